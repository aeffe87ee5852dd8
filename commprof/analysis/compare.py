"""Two runs side by side: did the change help (the verdict, ``uncertainty/verdict.py``), as much as predicted, and
what else moved: headline figures per rank, collectives per (op, group, size bin) per rank and step, DDP buckets by
index, stragglers, the settings that differ, and BEFORE's advice that AFTER applied, predicted against measured."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..model import RankTrace, Run
from ..model.alloc import DDP_FORWARD
from ..units import MiB
from .analyze import Report
from .crossrank.environment import differs
from .ddp.nosync import KNOB as SYNCS
from .ddp.view import view as ddp_view
from .overlap import most_exposed
from .steptimes import MIN_OUTSIDE, unprofiled_step_values
from .uncertainty.maths import RUN_DRIFT_SD_PCT
from .uncertainty.repeats import judge
from .uncertainty.verdict import CONFIDENCE, Verdict

RANK_FIGURES = ("step_ms", "compute_ms", "exposed_comm_ms", "overlap_pct", "wait_ms")


@dataclass(frozen=True, slots=True)
class Side:
    """One run's headline: its slowest rank's mean profiled step, and its step outside the profiler (the slowest's)."""

    path: str
    world_size: int | None
    ranks: tuple[int, ...]
    step_ms: float | None
    untraced_step_ms: float | None
    exposed_comm_ms: float | None
    compute_ms: float | None
    # the steps outside the profiler behind untraced_step_ms (the slowest rank's); None: given (--step-ms)
    untraced_steps: int | None = 0
    exposed_rank: int | None = None  # exposed_comm_ms's rank: the most exposed (the report's headline)
    cycle: str = ""  # "profiler cycle 1 of 2" where the folder held several (DIR@1 against DIR@2 read as one path)


def step_pair(before: Side, after: Side) -> tuple[str, float | None, float | None]:
    """The step before and after on one basis (the verdict's, ``verdict.outside_usable``): outside the profiler
    where both sides timed two or more steps there, else profiled on both (never one beside the other)."""
    if all(s.untraced_step_ms is not None and (s.untraced_steps is None or s.untraced_steps >= MIN_OUTSIDE)
           for s in (before, after)):
        return "outside the profiler", before.untraced_step_ms, after.untraced_step_ms
    return "profiled", before.step_ms, after.step_ms


@dataclass(frozen=True, slots=True)
class RankDelta:
    rank: int
    before: dict[str, float | None]  # RANK_FIGURES -> value (None: the rank is not in that run)
    after: dict[str, float | None]


@dataclass(frozen=True, slots=True)
class CollectiveDelta:
    """Per rank and step, in one message-size bin [lo, hi) of one op and process group."""

    op: str
    process_group: str
    lo_bytes: int
    hi_bytes: int
    before: tuple[float, float, float, float | None] | None  # count, bytes, time ms, busbw GB/s
    after: tuple[float, float, float, float | None] | None


@dataclass(frozen=True, slots=True)
class BucketDelta:
    index: int
    before: tuple[int, float | None, float | None] | None  # bytes, comm ms, exposed ms
    after: tuple[int, float | None, float | None] | None


@dataclass(frozen=True, slots=True)
class UnitDelta:
    """One FSDP unit: per phase (forward / backward all-gather, reduce-scatter) its exposed ms, before and after."""

    unit: str
    before: dict[str, float] | None
    after: dict[str, float] | None


@dataclass(frozen=True, slots=True)
class StragglerChange:
    rank: int
    before_late_ms: float | None  # mean lateness where it straggled, None where it did not
    after_late_ms: float | None
    # the wait it caused per analyzed step (the straggler table's figure), None where it did not straggle
    before_caused_ms: float | None = None
    after_caused_ms: float | None = None

    @property
    def status(self) -> str:
        if self.before_late_ms is None:
            return "appeared"
        return "went away" if self.after_late_ms is None else "still there"


@dataclass(frozen=True, slots=True)
class SettingChange:
    name: str
    before: Any
    after: Any


@dataclass(frozen=True, slots=True)
class AdviceCheck:
    knob: str
    value: Any
    applied: bool | None  # None: the files cannot tell
    predicted_step_ms: float
    measured_step_ms: float | None
    note: str = ""
    predicted_range_ms: tuple[float, float] | None = None  # the prediction's band (BEFORE's report)

    @property
    def inside(self) -> bool | None:
        """Whether the measured step fell inside the prediction's band (None where either is missing)."""
        if self.error_pct is None or self.predicted_range_ms is None or self.measured_step_ms is None:
            return None
        return self.predicted_range_ms[0] <= self.measured_step_ms <= self.predicted_range_ms[1]

    @property
    def error_pct(self) -> float | None:
        """Predicted against measured, where AFTER ran exactly the settings the prediction was for."""
        if not self.applied or not self.measured_step_ms:
            return None
        return 100.0 * (self.predicted_step_ms - self.measured_step_ms) / self.measured_step_ms


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    before: Side
    after: Side
    ranks: tuple[RankDelta, ...]
    collectives: tuple[CollectiveDelta, ...]
    buckets: tuple[BucketDelta, ...]
    stragglers: tuple[StragglerChange, ...]
    settings_changed: tuple[SettingChange, ...]
    advice_check: tuple[AdviceCheck, ...]
    notes: tuple[str, ...] = ()  # what could not be compared, and why
    fsdp_units: tuple[UnitDelta, ...] = ()
    verdict: Verdict | None = None  # faster / slower / no detectable change, with its interval
    no_effect: tuple[str, ...] = ()  # settings that differ but changed nothing the runs can see
    # (side, what disturbed it): a traced run its report calls disturbed (other load, a noisy step-to-step spread)
    disturbed: tuple[tuple[str, str], ...] = ()

    @property
    def step_ms_delta(self) -> float | None:
        _where, b, a = step_pair(self.before, self.after)
        return a - b if a is not None and b is not None else None


def _rank_figures(rep: Report) -> dict[int, dict[str, float | None]]:
    out: dict[int, dict[str, float | None]] = {}
    for o in rep.overlaps:
        s = o.representative
        if s is None:
            continue
        out[o.rank] = {"step_ms": s.step_ns / 1e6, "compute_ms": s.compute_ns / 1e6,
                       "exposed_comm_ms": s.exposed_ns / 1e6, "overlap_pct": s.overlap_pct,
                       "wait_ms": rep.cross.wait_ms_per_step.get(o.rank)}
    return out


def _side(rep: Report, figs: dict[int, dict[str, float | None]]) -> Side:
    slowest = max(figs.items(), key=lambda kv: kv[1]["step_ms"] or 0.0)[1] if figs else {}
    untraced: float | None = None
    n: int | None = 0
    if rep.unprofiled_step_ms:
        rank, untraced = max(rep.unprofiled_step_ms.items(), key=lambda kv: kv[1])
        timed = unprofiled_step_values(rep.run)
        n = len(timed[rank]) if rank in timed else None  # not timed by a sidecar: the user's --step-ms
    exp_rank = most_exposed({r: f["exposed_comm_ms"] for r, f in figs.items() if f["exposed_comm_ms"] is not None})
    exp_ms = figs[exp_rank]["exposed_comm_ms"] if exp_rank is not None else None
    return Side(rep.run.path, rep.run.world_size, tuple(rt.rank for rt in rep.run.ranks), slowest.get("step_ms"),
                untraced, exp_ms, slowest.get("compute_ms"), untraced_steps=n, exposed_rank=exp_rank,
                cycle=next((x.split(" (")[0] for x in rep.run.notes if x.startswith("profiler cycle ")), ""))


def _bins(rep: Report) -> dict[tuple[str, str, int], tuple[int, float, float, float, float | None]]:
    pairs = sum(len(o.steps) for o in rep.overlaps) or 1  # (rank, step) pairs: the per rank and step norm
    return {(b.op, b.process_group, b.lo_bytes): (b.hi_bytes, b.count / pairs, b.bytes / pairs,
                                                   b.time_ns / 1e6 / pairs, b.busbw_gbps)
            for b in rep.bandwidth.bins}


def _settings(rep: Report) -> dict[str, Any]:
    """What the files say about how the run was set up."""
    out: dict[str, Any] = {"world_size": rep.run.world_size, "backend": rep.backend,
                           "devices": ", ".join(rep.devices) or None}
    ddp = bool(rep.bucket_rows) or any(r.sidecar is not None and r.sidecar.ddp is not None for r in rep.run.ranks)
    out["parallelism"] = "fsdp2" if rep.fsdp is not None else "ddp" if ddp else None  # what FSDP2 <-> DDP advice sets
    if rep.fsdp is not None:  # FSDP2: what the sidecar says, else what the trace shows
        units = [u for u in rep.fsdp.report.units if u.unit != ""]
        rafs = {u.reshard_after_forward for u in units}
        out["reshard_after_forward"] = rafs.pop() if len(rafs) == 1 else "mixed"
        st = rep.fsdp.report.settings
        out["fsdp_prefetch"] = max((len(u.forward_prefetch) for u in st.units), default=0) if st else None
        if st is not None and st.mesh_shape:  # e.g. "2x1 (HSDP)" against "2": replicate / shard over other ranks
            out["fsdp_mesh"] = "x".join(map(str, st.mesh_shape)) + (" (HSDP)" if st.hsdp else "")
    acc = rep.ddp.accumulation  # the trace's DDP forward calls per step, and those that all-reduced the gradients
    if acc is not None or any(m.kind == DDP_FORWARD for r in rep.run.ranks for m in r.marks):
        out.update(micro_batches_per_step=acc.per_step if acc else 1, gradient_syncs_per_step=acc.synced if acc else 1)
    rt: RankTrace | None = next((r for r in rep.run.ranks if r.sidecar is not None), None)
    if rt is not None and rt.sidecar is not None:
        sc = rt.sidecar
        out["torch"] = sc.versions.get("torch")
        if sc.ddp is not None:
            d = sc.ddp
            out.update(bucket_cap_mb=d.bucket_cap_mb, comm_hook=d.hook, hook_matrix_rank=d.hook_matrix_rank,
                       gradient_as_bucket_view=d.gradient_as_bucket_view, static_graph=d.static_graph,
                       find_unused_parameters=d.find_unused_parameters, broadcast_buffers=d.broadcast_buffers,
                       parameters=len(d.params))
            return out
    for r in rep.run.ranks:  # a plain trace: what the DDP view infers
        v, _why = ddp_view(r, [b for b in rep.bucket_rows if b.rank == r.rank])
        if v is not None:
            out.update(bucket_cap_mb=round(v.cap_bytes / MiB, 3), compression=v.compression,
                       parameters=len(v.params))
            break
    return out


def _recorded_env(rep: Report) -> dict[str, str] | None:
    rt = next((r for r in rep.run.ranks if r.sidecar is not None), None)
    return rt.sidecar.env if rt is not None and rt.sidecar is not None else None


def _environment(before: Report, after: Report, sb: dict[str, Any], sa: dict[str, Any], notes: list[str]) -> None:
    """The recorded environment variables set differently, as settings ``env:NAME``, and a note (``differs``)."""
    diff, note = differs(_recorded_env(before), _recorded_env(after))
    for name, b, a in diff:
        sb[ENV_PREFIX + name], sa[ENV_PREFIX + name] = b, a
    notes += [note] if note else []


def _applied(knob: str, value: Any, after: dict[str, Any]) -> tuple[bool | None, str]:
    if knob == "bucket_cap_mb":
        cap = after.get("bucket_cap_mb")
        if cap is None:
            return None, "AFTER's bucket cap is not recorded"
        return abs(float(cap) - float(value)) <= 0.01 * float(value), ""
    if knob == "comm_hook":
        hook = str(after.get("comm_hook") or after.get("compression") or "")
        v = str(value)
        if v.startswith("powerSGD"):
            rank = v.rsplit("=", 1)[-1].rstrip(")")
            return "powerSGD" in hook and str(after.get("hook_matrix_rank")) == rank, ""
        key = v.split("_compress")[0]  # fp16 / bf16
        return key in hook, ""
    if knob in ("reshard_after_forward", "fsdp_prefetch", SYNCS, "parallelism"):
        if after.get(knob) is None:
            return None, f"AFTER's {knob} is not recorded"
        return after.get(knob) == {"DistributedDataParallel": "ddp"}.get(str(value), value), ""
    if knob == "fsdp" and isinstance(value, dict):
        got = [_applied(k, v, after) for k, v in value.items()]
        if any(g[0] is None for g in got):
            return None, "AFTER's FSDP settings are not all recorded"
        return all(g[0] for g in got), ""
    return None, f"whether AFTER applied {knob} is not recorded in its files"


UNSEEN_ADVICE = ("AFTER's traced steps show nothing it changed, the same bucket layout and collectives as BEFORE's (a "
                 "hook not yet at work, as PowerSGD before start_powerSGD_iter, runs plain all-reduces; a bucket cap "
                 "that gives the same layout changes nothing): its prediction is not checked")


def _advice_check(before: Report, after_settings: dict[str, Any], before_settings: dict[str, Any],
                  measured: float | None, measured_is_untraced: bool) -> list[AdviceCheck]:
    """Each advice item: applied or not; where AFTER's DDP settings are exactly those its prediction assumed (its
    knob, the settings it came with, the traced run's others), the prediction against AFTER's measured step."""
    out = []
    for a in before.advice:
        applied, note = _applied(a.knob, a.value, after_settings)
        assumed = dict(a.with_settings)
        mismatched = [k for k, v in assumed.items() if not _applied(k, v, after_settings)[0]]
        covered = set(a.value) if a.knob == "fsdp" and isinstance(a.value, dict) else {a.knob}
        others = [k for k in ("bucket_cap_mb", "comm_hook", "reshard_after_forward", "fsdp_prefetch", SYNCS)
                  if k not in covered and k not in assumed and before_settings.get(k) != after_settings.get(k)]
        exact = bool(applied) and not mismatched and not others
        if applied and not exact:
            note = ("its prediction assumed " + ", ".join(f"{k}={v}" for k, v in assumed.items()) + "; "
                    if assumed else "") + "AFTER changed other settings too: no error computed"
        elif exact and not measured_is_untraced:
            note = "measured: AFTER's profiled step (its files do not record the step outside the profiler)"
        out.append(AdviceCheck(a.knob, a.value, applied, a.predicted_step_ms, measured if exact else None, note,
                               a.predicted_range_ms))
    return out


def compare(before: Report, after: Report, also_before: Sequence[Run] = (), also_after: Sequence[Run] = (),
            confidence: float = CONFIDENCE, drift_sd_pct: float = RUN_DRIFT_SD_PCT) -> Comparison:
    """Compare two analyzed runs (``commprof.analyze``); ``also_before`` / ``also_after``: repeated runs of either
    setting (``commprof.load``), which the verdict's test uses to measure the drift between runs; ``drift_sd_pct``:
    the drift assumed where each setting has one run (``maths.RUN_DRIFT_SD_PCT``)."""
    fb, fa = _rank_figures(before), _rank_figures(after)
    notes: list[str] = []
    if before.run.world_size != after.run.world_size:
        notes.append(f"world sizes differ ({before.run.world_size} vs {after.run.world_size}): ranks are compared "
                     "where both runs have them, collectives per rank and step")
    ranks = tuple(RankDelta(r, fb.get(r, dict.fromkeys(RANK_FIGURES)), fa.get(r, dict.fromkeys(RANK_FIGURES)))
                  for r in sorted(set(fb) | set(fa)))
    bb, ba = _bins(before), _bins(after)
    colls = []
    for key in sorted(set(bb) | set(ba)):
        hi = (bb.get(key) or ba[key])[0]
        colls.append(CollectiveDelta(key[0], key[1], key[2], hi, bb[key][1:] if key in bb else None,
                                     ba[key][1:] if key in ba else None))
    sb, sa = _settings(before), _settings(after)
    _environment(before, after, sb, sa, notes)
    buckets = _buckets(before.buckets, after.buckets, sb, sa, notes)
    sb_, sa_ = ({s.rank: s for s in rep.cross.stragglers} for rep in (before, after))
    strag = tuple(StragglerChange(r, *(x.mean_late_ms if x else None for x in (sb_.get(r), sa_.get(r))),
                                  *(x.caused_wait_ms if x else None for x in (sb_.get(r), sa_.get(r))))
                  for r in sorted(set(sb_) | set(sa_)))
    settings = tuple(SettingChange(k, sb.get(k), sa.get(k)) for k in sorted(set(sb) | set(sa))
                     if sb.get(k) != sa.get(k))
    side_b, side_a = _side(before, fb), _side(after, fa)
    measured = side_a.untraced_step_ms or side_a.step_ms
    checks = _advice_check(before, sa, sb, measured, side_a.untraced_step_ms is not None)
    notes += [] if before.advice else ["BEFORE had no advice to check"]
    ops_b, ops_a = {c.op for c in before.collectives}, {c.op for c in after.collectives}
    if ops_b != ops_a or sb.get("devices") != sa.get("devices"):
        notes.append(f"the runs issue different collectives ({', '.join(sorted(ops_b)) or 'none'} vs "
                     f"{', '.join(sorted(ops_a)) or 'none'}) or ran on different devices: they may be different jobs, "
                     "whose figures compare only as totals")
    no_effect = unseen(before, after, settings)
    checks = [replace(a, measured_step_ms=None, note="; ".join(n for n in (a.note, UNSEEN_ADVICE) if n))
              if a.applied and a.knob in no_effect else a for a in checks]  # e.g. PowerSGD not yet started
    if no_effect:
        notes.append(f"{', '.join(no_effect)} changed, but nothing the runs can see: the same bucket layout and the "
                     "same collectives (count and bytes per step); any difference in step time is the runs' noise "
                     "(see the verdict)")
    return Comparison(before=side_b, after=side_a, ranks=ranks, collectives=tuple(colls), buckets=buckets,
                      stragglers=strag, settings_changed=settings, advice_check=tuple(checks), notes=tuple(notes),
                      fsdp_units=_units(before, after),
                      verdict=judge([before.run, *also_before], [after.run, *also_after], before.steps, after.steps,
                                      confidence, drift_sd_pct), no_effect=no_effect,
                      disturbed=tuple((k, r.noise.describe()) for k, r in (("BEFORE", before), ("AFTER", after))
                                      if r.noise.disturbed))


ENVIRONMENT = ("world_size", "backend", "devices", "torch", "parameters")
ENV_PREFIX = "env:"  # a recorded environment variable, as a setting (``_environment``)


WIRE_ONLY = frozenset({"bucket_cap_mb", "comm_hook", "hook_matrix_rank", "compression"})  # what only moves bytes


def unseen(before: Report, after: Report, settings: Sequence[SettingChange]) -> tuple[str, ...]:
    """The settings that differ, each acting on the wire alone (``WIRE_ONLY``), where the buckets and collectives
    (op, count and bytes per rank and step) are the same."""
    env = [s for s in settings if s.name in ENVIRONMENT or s.name.startswith(ENV_PREFIX)]
    knobs = tuple(s.name for s in settings if s not in env)
    if not knobs or env or not set(knobs) <= WIRE_ONLY:  # micro-batches, prefetch...: work the wire does not show
        return ()
    if [b.bytes for b in before.buckets] != [b.bytes for b in after.buckets]:
        return ()

    def per_step(rep: Report) -> dict[tuple[str, int], tuple[float, float]]:
        pairs = sum(len(o.steps) for o in rep.overlaps) or 1
        return {k: (round(c / pairs, 2), round(b / pairs, -2)) for k, (c, b) in rep.bandwidth.volume_by_size().items()}

    return knobs if per_step(before) == per_step(after) else ()


def _units(before: Report, after: Report) -> tuple[UnitDelta, ...]:
    def exposed(rep: Report) -> dict[str, dict[str, float]]:
        if rep.fsdp is None:
            return {}
        return {u.unit: {ph: v.exposed_ms for ph, v in u.phases.items()} for u in rep.fsdp.report.units}

    b, a = exposed(before), exposed(after)
    return tuple(UnitDelta(u, b.get(u), a.get(u)) for u in sorted(set(b) | set(a), key=lambda u: (u != "", u)))


def _buckets(before: Sequence[Any], after: Sequence[Any], sb: dict[str, Any], sa: dict[str, Any],
             notes: list[str]) -> tuple[BucketDelta, ...]:
    if not before and not after:
        return ()
    if sb.get("parameters") != sa.get("parameters"):
        notes.append("the models differ (parameter counts): DDP buckets are not compared")
        return ()
    b, a = ({x.index: (x.bytes, x.comm_ms, x.exposed_ms) for x in xs} for xs in (before, after))
    if [v[0] for _, v in sorted(b.items())] != [v[0] for _, v in sorted(a.items())]:  # bucket i is not bucket i
        notes.append("the bucket layouts differ: DDP buckets are listed side by side by index, not matched")
    return tuple(BucketDelta(i, b.get(i), a.get(i)) for i in sorted(set(b) | set(a)))


def shares_something(before: Report, after: Report) -> bool:
    """Whether two runs have anything to compare: a rank or a collective operation in common."""
    ranks = {rt.rank for rt in before.run.ranks} & {rt.rank for rt in after.run.ranks}
    ops = {c.op for c in before.collectives} & {c.op for c in after.collectives}
    return bool(ranks or ops)
