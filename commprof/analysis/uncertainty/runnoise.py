"""The noise of a traced run (``uncertainty.Noise``) read from its records: profiled step durations, the sidecar's
wall times of the steps outside the profiler (less their slow episodes, named: ``episodes``; both less the steps
slow every k steps, named: ``periodic``; both at one input size where the inputs' size explains their variation:
``inputwork``), and the ranks' probes of the operation costs."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from ...model import Run
from ..overlap import alike_bytes, usual_kind
from ..steptimes import unprofiled_steps
from .episodes import Episode
from .episodes import find as find_episodes
from .hostload import cpu_wait, host_loads, other_load_pct
from .inputwork import Series, adjust, job_inputs
from .maths import RUN_DRIFT_SD_PCT, Noise, disagreement_pct, noise
from .periodic import Periodic, rhythm
from .periodic import find as find_periodic
from .periodic import without as without_periodic
from .stalls import Stall


def run_noise(run: Run, wanted: tuple[int, ...] | None = None, drift_sd_pct: float = RUN_DRIFT_SD_PCT) -> Noise:
    steps = [[s for s in rt.steps if wanted is None or s.number in wanted] for rt in run.ranks]
    outside = unprofiled_steps(run)
    # each rank's timed steps, profiled and outside: where slow ones recur, they are named, not noise
    timed = {rt.rank: sorted([(s.number, s.duration_ns / 1e6) for s in ss] + outside.get(rt.rank, []))
             for rt, ss in zip(run.ranks, steps, strict=True)}
    # each profiled step's bytes: a step of another kind is no stall
    moved: list[Counter[int]] = [Counter() for _ in run.ranks]
    for m, rt in zip(moved, run.ranks, strict=True):
        for c in rt.collectives:
            m[c.step] += c.bytes
    kinds = {(rt.rank, s.number): a for rt, ss, m in zip(run.ranks, steps, moved, strict=True)
             for s, a in zip(ss, alike_bytes([m[s.number] for s in ss]), strict=True)}
    periodic = find_periodic(timed)
    # every rank alike: the job's rhythm, where its profiled steps are of another kind (they moved more bytes)
    rhythmic = tuple(p for p in rhythm(without_periodic(timed, periodic)) if _another_kind(p, kinds))
    drop = {rn for p in (*periodic, *rhythmic) for rn in p.left_out}
    steps = [[s for s in ss if (rt.rank, s.number) not in drop] for rt, ss in zip(run.ranks, steps, strict=True)]
    raw_in = {rt.rank: [(s.number, s.duration_ns / 1e6) for s in ss] for rt, ss in zip(run.ranks, steps, strict=True)}
    raw_out = without_periodic(outside, (*periodic, *rhythmic))
    # steps of larger inputs are the job's data, not noise: judged at one input size where the size explains them
    (inside, outside), _moved, fit = adjust([raw_in, raw_out], job_inputs(run))
    outside, episodes = find_episodes(outside)
    loads = host_loads(run)  # once: both figures read the same groups
    rates, load, wait = _rates_disagreement(run), other_load_pct(run, loads), cpu_wait(run, loads)

    def judge(inside: Series, outside: Series) -> Noise:
        return noise([[ms for _n, ms in v] for v in inside.values()], [[ms for _n, ms in v] for v in outside.values()],
                     rates, load, profiled_ids=[[(r, n) for n, _ms in v] for r, v in inside.items()],
                     unprofiled_ids=[[(r, n) for n, _ms in v] for r, v in outside.items()], drift_sd_pct=drift_sd_pct,
                     cpu_wait=wait, profiled_alike=[[kinds[(r, n)] for n, _ms in v] for r, v in inside.items()])

    found = judge(inside, outside)
    if fit is not None:  # the variation as the steps came; the stalls' and the episodes' own times
        gone = {n for e in episodes for n in e.steps}
        raw = judge(raw_in, {r: [(n, ms) for n, ms in v if n not in gone] for r, v in raw_out.items()})
        # the step now, the calibration's target, is the median of the steps as they came: its error is theirs
        found = replace(found, inputs=fit, profiled_raw_pct=raw.profiled_pct, unprofiled_raw_pct=raw.unprofiled_pct,
                        unprofiled_median_pct=raw.unprofiled_median_pct,
                        left_out=_as_came(found.left_out, raw_in, raw_out))
        episodes = tuple(_episode_as_came(e, raw_out) for e in episodes)
    return replace(found, episodes=episodes, periodic=periodic, rhythm=rhythmic)


HEAVY = 1.25  # a step whose size is over this many times the lower median of the steps' sizes: of another kind


def heavy_steps(run: Run, wanted: tuple[int, ...] | None, nz: Noise) -> frozenset[int]:
    """The analyzed profiled steps of larger inputs, where the run's noise found that the job's sizes explain its
    profiled steps (``nz.inputs.profiled``: the same decision, on the same steps): sizes over ``HEAVY`` times the
    lower median of theirs, less the steps it left out as stalls (a stall at a long input is still one).  Never an
    outlier of the headline: the longest sequences' steps read "step #5 left out: 335.9 ms, 2.4x the median of the
    other steps" beside a noise line calling them the job's data."""
    if nz.inputs is None or not nz.inputs.profiled:
        return frozenset()
    sizes = job_inputs(run)
    analyzed = {s.number for rt in run.ranks for s in rt.steps if wanted is None or s.number in wanted}
    steps = sorted(analyzed & set(sizes))
    stalled = {s.step for s in nz.left_out if s.profiled}
    return frozenset(n for n, usual in zip(steps, usual_kind([sizes[n] for n in steps], HEAVY - 1.0), strict=True)
                     if not usual and n not in stalled)


def _as_came(stalls: tuple[Stall, ...], inside: Series, outside: Series) -> tuple[Stall, ...]:
    """The stalls (judged at one input size) told as their steps came: their times, and each over the median of its
    rank's other steps of its kind as they came."""
    series = {True: {r: dict(v) for r, v in inside.items()}, False: {r: dict(v) for r, v in outside.items()}}
    out = []
    for s in stalls:
        got = [(series[s.profiled][r][s.step], [ms for n, ms in series[s.profiled][r].items() if n != s.step])
               for r in s.ranks if s.step in series[s.profiled].get(r, {})]
        if got:
            factor = min((ms / float(np.median(o)) if o and np.median(o) > 0 else s.factor) for ms, o in got)
            s = s._replace(low_ms=min(ms for ms, _ in got), high_ms=max(ms for ms, _ in got), factor=factor)
        out.append(s)
    return tuple(out)


def _episode_as_came(e: Episode, outside: Series) -> Episode:
    """A slow episode (found at one input size) told as its steps came: the job's step (the slowest rank's) in them,
    and their median over the median of the job's other steps."""
    job: dict[int, float] = {}
    for v in outside.values():
        for n, ms in v:
            job[n] = max(job.get(n, 0.0), ms)
    inside = [job[n] for n in e.steps if n in job]
    others = [ms for n, ms in job.items() if n not in e.steps]
    if not inside or not others:
        return e
    ref = float(np.median(others))
    return Episode(steps=e.steps, low_ms=min(inside), high_ms=max(inside),
                   factor=float(np.median(inside)) / ref if ref > 0 else e.factor)


def _rates_disagreement(run: Run) -> float | None:
    """How far the ranks' probes disagree on the same operation (each product shape, the element-wise passes)."""
    per: dict[object, list[float]] = defaultdict(list)
    for rt in run.ranks:
        p = rt.sidecar.rates if rt.sidecar is not None else None
        if p is None:
            continue
        for t in p.products:
            per[(t.kind, t.n, t.m, t.r)].append(t.ns)
        for rows, r, ns in p.orthogonalize:
            per[("qr", rows, r)].append(ns)
        if p.pass_bps:
            per["pass"].append(p.pass_bps)
        if p.fresh_bps:
            per["fresh"].append(p.fresh_bps)
    return disagreement_pct([v for v in per.values() if len(v) >= 2])


def _another_kind(p: Periodic, kinds: Mapping[tuple[int, int], bool]) -> bool:
    """Are the rhythm's profiled steps all of another kind (``overlap.alike_bytes``: they moved more bytes)?  Noise
    never moves bytes: under heavy-tailed noise shared by every rank, 4% of runs of 11 steps had a phase standing
    apart on every rank alike; a rhythm with none of its steps profiled is not told."""
    seen = [kinds[rn] for rn in p.left_out if rn in kinds]
    return bool(seen) and not any(seen)
