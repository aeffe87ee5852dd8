"""Steps whose inputs differ in size: the job's data, not noise.  A model fed batches of varying sequence length or
image size runs longer steps for larger inputs; their variation is the job's own and a quieter machine would not
remove it.  The capture records each step's input size (``capture.inputs``: the elements of the tensors the
model's calls received); the job's step waits for its largest rank, so a step's size is the largest over the ranks
that recorded it.

One decision per kind of steps (the profiled ones, those outside the profiler) for every rank: the job's step
(each step's median over the ranks: a synchronous job's ranks end it together) against its size.  Where the size
varies (by ``MIN_INPUTS_PCT`` or more, ``MIN_OFF`` steps and a quarter or more not of its most usual size: a last
short batch or an evaluation step alone draws no line), does not follow the steps' order (a warm-up of sequence
lengths or a curriculum: a slowdown over the same steps would read as their work; Kendall's test at 1%, either
way), larger inputs take longer beyond chance (``rank_z``), and a line through the steps' times against the size
(Theil-Sen: the median of the pairwise slopes, which a stall does not bend) explains ``MIN_EXPLAINED`` of the
variance or more (of the moved steps against the steps' own, both without the moved series' outliers, a quarter
of the steps at most: a line through work that grows faster than the size leaves its ends apart), every
rank's steps of that kind are moved to its median size (``ms - slope x (size - median size)``); else they stay as
they came.  The run's noise, its stalls and its slow episodes are then judged on the moved steps (``runnoise``): a
step of longer sequences is no stall, and the variation that remains is what disturbs the run; the stalls and
episodes are told with the times their steps took, and the calibration's error (the step now is the median of the
steps as they came) stays theirs.

Measured (``/tmp``-style new-user loop, 2026-12-08, a 3-layer transformer on 2-rank gloo DDP, each rank drawing a
sequence length of 48-96 at random each step): steps outside the profiler varied by 19%; the largest rank's length
explained 96-98% of their variance on both ranks of three runs, and 2.5-4.4% remained: the run read "disturbed"
(advice withheld, "trace again on a quieter machine"), now it reads quiet with its inputs named."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ...model import Run
from .spread import robust_sd

MIN_INPUTS_PCT = 5.0  # inputs varying less than this (coefficient of variation) are one size
MIN_EXPLAINED = 0.5  # the share of the steps' variance the size must explain for the steps to be moved
MIN_STEPS = 4  # steps with a size a rank needs for a line
MIN_OFF = 3  # ... of which this many (and a quarter) not of the most usual size
MIN_Z = 2.326  # ... and larger inputs taking longer beyond chance (Kendall's test, one-sided 1%: ``rank_z``)
MAX_PAIRS = 20_000  # pairwise slopes sampled (seeded) beyond this many pairs
HAMPEL_SDS = 3.0  # a moved step this many robust deviations from the median is an outlier, kept out of the share

Series = Mapping[int, Sequence[tuple[int, float]]]


@dataclass(frozen=True, slots=True)
class InputFit:
    """What the steps' input sizes explain: ``inputs_pct`` how much the job's input size varies from step to step,
    ``explained`` the share of the job's step-time variance it explains (the least of the kinds of steps moved),
    ``ranks`` how many ranks' steps were moved, ``ms_per_melem`` the line's slope (ms per million input elements,
    the median of the kinds'), ``profiled`` / ``outside``: which kinds of steps were moved (the profiled ones, those
    outside the profiler)."""

    inputs_pct: float
    explained: float
    ranks: int
    ms_per_melem: float
    profiled: bool = False
    outside: bool = False


def job_inputs(run: Run) -> dict[int, int]:
    """Each step's input size: the largest over the ranks that recorded it (the job's step waits for that rank)."""
    out: dict[int, int] = {}
    for rt in run.ranks:
        for s in rt.sidecar.step_times if rt.sidecar is not None else ():
            if s.input_elems is not None and s.input_elems > 0:
                out[s.number] = max(out.get(s.number, 0), s.input_elems)
    return out


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The pairs of steps compared (a seeded sample of ``MAX_PAIRS`` where there are more) and how many pairs each
    stands for."""
    total = n * (n - 1) // 2
    if total <= MAX_PAIRS:
        i, j = np.triu_indices(n, k=1)
    else:  # drawn, not listed: a 10,000-step sidecar has 50 million pairs
        a, b = np.random.default_rng(0).integers(0, n, size=(2, MAX_PAIRS))
        a, b = a[a != b], b[a != b]
        i, j = np.minimum(a, b), np.maximum(a, b)
    return i, j, total / max(len(i), 1)


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """Theil-Sen: the median of the slopes between pairs of steps of different sizes."""
    i, j, _w = _pairs(len(x))
    dx = x[j] - x[i]
    keep = dx != 0
    return float(np.median((y[j] - y[i])[keep] / dx[keep])) if keep.any() else 0.0


def rank_z(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's test that larger ``x`` go with larger ``y``, as a normal deviate: the pairs ordered alike less those
    ordered apart, over its standard deviation where nothing ties the two (``x`` may tie: its ties counted out; ``y``
    must not), that of a sample of the pairs added where they were sampled (without it, 20,000 steps of noise read
    z > 2.326 one time in ten).  A line through a few steps of pure noise explains half their variance by chance
    (14% of 6-step series, 7% of 8-step ones, 1,000 simulated each); the test keeps that out."""
    i, j, w = _pairs(len(x))
    signs = np.sign(x[j] - x[i]) * np.sign(y[j] - y[i])
    n = len(x)
    total = n * (n - 1) / 2
    _, ties = np.unique(x, return_counts=True)
    var = (n * (n - 1) * (2 * n + 5) - float(np.sum(ties * (ties - 1) * (2 * ties + 5)))) / 18.0
    if w > 1 and len(signs) > 1:  # S estimated from a sample of the pairs: its own variance joins
        var += total * total * float(np.var(signs, ddof=1)) / len(signs)
    return float(np.sum(signs)) * w / np.sqrt(var) if var > 0 else 0.0


def _variation_pct(v: np.ndarray) -> float:
    m = float(np.mean(v))
    return float(np.std(v, ddof=1)) / m * 100.0 if len(v) > 1 and m > 0 else 0.0


def _line(series: Series, sizes: Mapping[int, int]) -> tuple[float, float, float, float] | None:
    """The job's line through one kind of steps: each step's time the median over the ranks that timed it (a
    synchronous job's ranks end each step together), against its size.  (slope in ms per element, the size's
    variation in %, the share of the variance explained, the median size); None where the size is one, or one but
    for a few steps, too few steps have one, the sizes follow the steps' order (a warm-up of sequence lengths, a
    curriculum: a slowdown over the same steps would read as their work), larger inputs do not take longer beyond
    chance, or the line explains too little."""
    per: dict[int, list[float]] = defaultdict(list)
    for steps in series.values():
        for n, ms in steps:
            if n in sizes:
                per[n].append(ms)
    nums = sorted(per)
    if len(nums) < MIN_STEPS:
        return None
    x = np.array([sizes[n] for n in nums], dtype=float)
    y = np.array([float(np.median(per[n])) for n in nums])
    pct = _variation_pct(x)
    off = len(x) - int(np.unique(x, return_counts=True)[1].max())  # the steps not of the most usual size
    if pct < MIN_INPUTS_PCT or off < max(MIN_OFF, len(x) // 4):
        return None  # one size, or one size but for a few steps (a last short batch): no line through them
    if abs(rank_z(x, np.array(nums, dtype=float))) >= MIN_Z:
        return None  # the sizes trend with the steps' order: their work and a drift cannot be told apart
    b = slope(x, y)
    if b <= 0 or rank_z(x, y) < MIN_Z:
        return None
    mid = float(np.median(x))
    moved = y - b * (x - mid)
    centre = float(np.median(moved))
    sd = robust_sd(moved, centre)
    far = np.abs(moved - centre)
    out = far > max(HAMPEL_SDS * sd, 1e-9 * abs(centre))  # no deviation: all but the equal ones
    # at most a quarter, the farthest: a line bent by the work (attention's square) leaves the ends apart, and they
    # are the steps the size speaks for
    cap = len(far) // 4
    out &= far >= np.sort(far)[-cap] if cap else np.zeros(len(far), dtype=bool)
    kept = ~out
    raw_var = float(np.var(y[kept], ddof=1)) if kept.sum() > 1 else 0.0
    if raw_var <= 0:
        return None
    share = 1.0 - float(np.var(moved[kept], ddof=1)) / raw_var
    return (b, pct, share, mid) if share >= MIN_EXPLAINED else None


def adjust(series: Sequence[Series], sizes: Mapping[int, int]) -> tuple[list[dict[int, list[tuple[int, float]]]],
                                                                        list[bool], InputFit | None]:
    """Each kind of steps (rank -> [(step, ms)]: the profiled steps, those outside the profiler) with every rank's
    steps moved to the kind's median input size where the job's line explains them (``_line``: one decision for
    every rank), which kinds moved, and what the sizes explained (None: no kind moved)."""
    out: list[dict[int, list[tuple[int, float]]]] = []
    moved_kinds: list[bool] = []
    fits = []
    ranks: set[int] = set()
    for one in series:
        line = _line(one, sizes) if sizes else None
        moved_kinds.append(line is not None)
        if line is None:
            out.append({r: list(v) for r, v in one.items()})
            continue
        b, _pct, _share, mid = line
        fits.append(line)
        out.append({r: [(n, ms - b * (sizes[n] - mid)) if n in sizes else (n, ms) for n, ms in v]
                    for r, v in one.items()})
        ranks.update(r for r, v in one.items() if any(n in sizes for n, _ms in v))
    if not fits:
        return out, moved_kinds, None
    return out, moved_kinds, InputFit(
        inputs_pct=max(f[1] for f in fits), explained=min(f[2] for f in fits), ranks=len(ranks),
        ms_per_melem=float(np.median([f[0] for f in fits])) * 1e6, profiled=moved_kinds[0],
        outside=len(moved_kinds) > 1 and moved_kinds[1])


def describe(fit: InputFit, disturbed: bool) -> str:
    """'the steps' inputs vary in size by 22% from step to step and explain 90% of their variation: the job's data,
    not a disturbance'."""
    return (f"the steps' inputs vary in size by {fit.inputs_pct:.0f}% from step to step and explain "
            f"{fit.explained * 100:.0f}% of their variation: the job's data"
            + ("" if disturbed else ", not a disturbance"))
