"""``summary.json`` (schema ``commprof.summary/1``): the stable keys (the "summary.json" keys of the project's
contract, docs/metrics.md), and more beside them."""

from __future__ import annotations

from typing import Any

import orjson

from .._version import __version__
from ..analysis.analyze import Report
from ..analysis.overlap import RankOverlap
from ..analysis.uncertainty.maths import Noise
from ..analysis.uncertainty.periodic import Periodic
from ..analysis.volume import CollectiveStat
from ..formats import files
from .spreads import spread_json
from .views import VIEWS

SCHEMA = files.SUMMARY_SCHEMA


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


# summary.json's keys in their order (the stable keys among them); a family's keys not named here come
# before "warnings"
ORDER = ("schema", "commprof_version", "trace_dir", "run_id", "world_size", "backend", "devices", "ranks_loaded",
         "missing_ranks", "notes", "per_rank_only", "steps_analyzed", "ranks", "collectives", "buckets",
         "stragglers", "clock_offsets_ms", "straggler_threshold_ms", "clock_reference_rank", "root_cause",
         "critical_path", "critical_comm", "bandwidth_bins", "bandwidth_model", "findings", "advice", "noise",
         "whatifs", "whatif", "advisor", "pipeline", "memory", "churn", "parallelism", "dataparallel", "transfers",
         "fsdp", "hang", "monitor", "warnings")


def summary(rep: Report) -> dict[str, Any]:
    """Every key: the run's own, then each family's (``render/views.py``), in ``ORDER``."""
    out = _core(rep)
    for v in VIEWS:
        if v.json is not None:
            out.update(v.json(rep))
    known = [k for k in ORDER if k in out]
    rest = [k for k in out if k not in ORDER]
    keys = known[:-1] + rest + known[-1:] if known and known[-1] == "warnings" else known + rest
    return {k: out[k] for k in keys}


def _core(rep: Report) -> dict[str, Any]:
    run = rep.run
    cross = rep.cross
    return {
        "schema": SCHEMA,
        "commprof_version": __version__,
        "trace_dir": run.path,
        "run_id": run.run_id,
        "world_size": run.world_size if run.world_size is not None else len(run.ranks),
        "backend": rep.backend,
        "devices": list(rep.devices),
        "ranks_loaded": [rt.rank for rt in run.ranks],
        "missing_ranks": list(run.missing_ranks),
        "notes": list(run.notes),  # the header's lines: cycle analyzed, ranks present of the world, skipped, per-rank
        "per_rank_only": run.per_rank_only,
        "steps_analyzed": sorted({s.step for o in rep.overlaps for s in o.steps}),
        "ranks": [_rank(rep, o) for o in rep.overlaps],
        "collectives": [_collective(c) for c in rep.collectives],
        "stragglers": [{"rank": s.rank, "late_count": s.late_count, "mean_late_ms": _r(s.mean_late_ms),
                        "instances": s.instances, "late_compute_ms": _r(s.compute_ms),
                        "late_comm_ms": _r(s.comm_ms), "late_idle_ms": _r(s.idle_ms),
                        "caused_wait_ms": _r(s.caused_wait_ms)}
                       for s in cross.stragglers],
        "clock_offsets_ms": {str(r): _r(v / 1e6) for r, v in sorted(cross.offsets_ns.items())},
        "straggler_threshold_ms": _r(cross.threshold_ns / 1e6),
        "clock_reference_rank": cross.reference_rank,
        **_bandwidth(rep),
        "findings": [{"severity": f.severity, "text": f.text} for f in rep.findings],
        "advice": [{"knob": a.knob, "value": a.value, "baseline_step_ms": _r(a.baseline_step_ms),
                    "predicted_step_ms": _r(a.predicted_step_ms), "predicted_range_ms": range_ms(a.predicted_range_ms),
                    "why": a.why, "with": dict(a.with_settings)}
                   for a in rep.advice],
        "noise": noise_dict(rep.noise),
        "whatifs": whatifs(rep),
        "warnings": list(rep.warnings),
    }


def whatifs(rep: Report) -> list[dict[str, Any]]:
    """Every family's what-ifs (``Section.whatifs``): each setting a model replayed, with its band and, where the
    setting changes memory, its predicted peak; the other settings it assumes beside its knob as keys of their own
    (``reshard_after_forward`` of ``parallelism = fsdp2``)."""
    return [{"family": s.family, "knob": w.knob, "value": w.value, **dict(w.with_settings),
             "predicted_step_ms": _r(w.predicted_step_ms),
             "predicted_range_ms": range_ms(w.predicted_range_ms), "predicted_peak_bytes": w.predicted_peak_bytes}
            for s in rep.sections for w in s.whatifs]


def _rank(rep: Report, o: RankOverlap) -> dict[str, Any]:
    """One rank's row: the mean over its analyzed steps, outlier steps left out (they add up), the step's spread,
    each figure's spread (``spread``: the HTML's and the terminal's ``±``), its whole window."""
    rt = rep.run.rank(o.rank)
    w = o.window
    s = o.representative
    cpu_steps = {st.number: st.duration_ns for st in rt.steps}
    return {
        "rank": o.rank,
        "steps": len(o.steps),
        "step_ms": _ms(s.step_ns if s else 0),
        "compute_ms": _ms(s.compute_ns if s else 0),
        "comm_ms": _ms(s.comm_ns if s else 0),
        "overlapped_ms": _ms(s.overlapped_ns if s else 0),
        "exposed_comm_ms": _ms(s.exposed_ns if s else 0),
        "other_ms": _ms(s.other_ns if s else 0),
        "compute_only_ms": _ms(s.compute_only_ns if s else 0),
        "overlap_pct": _r(s.overlap_pct if s else 0.0, 2),
        "comm_bytes_per_step": s.comm_bytes if s else 0,
        "median_step": o.typical_step,  # the analyzed step nearest the mean (the headline is the mean)
        "cpu_step_ms": _ms(cpu_steps.get(o.typical_step)) if o.typical_step is not None else None,
        "step_spread": _spread(o),
        "spread": spread_json(o),  # each figure's median, range and kept range over the steps (render/spreads.py)
        "wait_ms": _r(rep.cross.wait_ms_per_step.get(o.rank)),
        "step_ms_unprofiled": _r(rep.unprofiled_step_ms.get(o.rank)),
        # what advice is measured against, and where it comes from (steptimes.step_now_ms)
        "step_now_ms": _r(rep.step_now_ms.get(o.rank)),
        "step_now_basis": rep.step_now_basis.get(o.rank),
        "clock_offset_ms": _r(rep.cross.offsets_ns.get(o.rank, 0) / 1e6),
        "device": rt.device_kind,
        "trace": rt.path,
        "mean": {f"{k}_ms": _ms(o.mean(k + "_ns")) for k in ("step", "compute", "comm", "overlapped", "exposed",
                                                              "other", "compute_only")},
        "window": {"span_ms": _r(w.step_ns / 1e6), "compute_ms": _r(w.compute_ns / 1e6),
                   "comm_ms": _r(w.comm_ns / 1e6), "overlapped_ms": _r(w.overlapped_ns / 1e6),
                   "exposed_comm_ms": _r(w.exposed_ns / 1e6), "overlap_pct": _r(w.overlap_pct, 2),
                   "comm_bytes": w.comm_bytes},
        # HTA's get_comm_comp_overlap window: work launched before the last ProfilerStep began
        "overlap_pct_hta_window": _r(o.hta_window.overlap_pct, 2),
        # the work the rank was given: its matrix products' FLOPs per analyzed step, from their recorded shapes
        # (reader/matmuls.py; null without shapes)
        "matrix_gflop_per_step": _gflop(rt.matrix_flops, {s.step for s in o.steps}),
        # the variables that change how fast a job runs, as the rank recorded them (absent: not recorded)
        **({"env": dict(rt.sidecar.env)} if rt.sidecar is not None and rt.sidecar.env is not None else {}),
    }


def _gflop(per_step: tuple[tuple[int, float], ...], steps: set[int]) -> float | None:
    """The mean of a rank's matrix FLOPs over its analyzed steps that ran any (GFLOP), None where none did."""
    vals = [f for n, f in per_step if n in steps]
    return _r(sum(vals) / len(vals) / 1e9, 4) if vals else None


def _ms(ns: float | None) -> float | None:
    return None if ns is None else _r(ns / 1e6)


def _collective(c: CollectiveStat) -> dict[str, Any]:
    return {"op": c.op, "process_group": c.process_group, "group_size": c.group_size, "dtype": c.dtype,
            "count": _r(c.count, 2), "bytes": int(round(c.bytes)), "time_ms": _r(c.time_ns / 1e6),
            "algbw_gbps": _r(c.algbw_gbps), "busbw_gbps": _r(c.busbw_gbps), "ranks": c.ranks,
            "executed": c.executed, "total_count": c.total_count, "via": c.via or None,
            "bytes_unknown_count": c.unknown_size, "rank_bytes_range": [_r(c.rank_bytes[0]), _r(c.rank_bytes[1])],
            "ranks_disagree": c.ranks_disagree}


def _bandwidth(rep: Report) -> dict[str, Any]:
    return {
        "bandwidth_bins": [{"op": b.op, "process_group": b.process_group, "group_size": b.group_size,
                            "lo_bytes": b.lo_bytes, "hi_bytes": b.hi_bytes, "count": b.count, "bytes": b.bytes,
                            "transfer_ms": _r(b.time_ns / 1e6), "algbw_gbps": _r(b.algbw_gbps),
                            "busbw_gbps": _r(b.busbw_gbps), "untimed": b.untimed} for b in rep.bandwidth.bins],
        "bandwidth_model": [{"op": f.op, "process_group": f.process_group, "group_size": f.group_size,
                             "points": f.points, "alpha_us": _r(f.alpha_us), "beta_gbps": _r(f.beta_gbps),
                             "busbw_gbps": _r(f.busbw_gbps), "peak_gbps": _r(f.peak_gbps),
                             "peak_source": f.peak_source, "pct_of_peak": _r(f.pct_of_peak, 1),
                             "untimed": f.untimed}
                            for f in rep.bandwidth.fits],
    }


def render(rep: Report) -> bytes:
    return orjson.dumps(summary(rep), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)




def range_ms(rng: tuple[float, float] | None) -> list[float | None] | None:
    """A prediction's band [low, high] (ms) in summary.json."""
    return [_r(rng[0]), _r(rng[1])] if rng is not None else None


def noise_dict(n: Noise) -> dict[str, Any]:
    """The traced run's noise (``uncertainty.maths.Noise``), in %."""
    return {"profiled_step_variation_pct": _r(n.profiled_pct, 1),
            "unprofiled_step_variation_pct": _r(n.unprofiled_pct, 1), "rates_disagreement_pct": _r(n.rates_pct, 1),
            "other_load_pct": _r(n.other_load_pct, 1), "cpu_wait_pct": _r(n.cpu_wait_pct, 1),
            "cpu_wait_rank": n.cpu_wait_rank,
            "drift_sd_pct_assumed": _r(n.drift_sd_pct, 1),
            "profiled_steps": n.steps_profiled, "unprofiled_steps": n.steps_unprofiled, "disturbed": n.disturbed,
            "stalls_left_out": [{"step": st.step, "ranks": list(st.ranks), "min_ms": _r(st.low_ms),
                                 "max_ms": _r(st.high_ms), "x_median": _r(st.factor, 1), "profiled": st.profiled}
                                for st in n.left_out],
            "episodes_left_out": [{"steps": list(e.steps), "min_ms": _r(e.low_ms),
                                   "max_ms": _r(e.high_ms), "x_median": _r(e.factor, 1)} for e in n.episodes],
            "periodic_left_out": [_periodic(p) for p in n.periodic],
            "rhythm_left_out": [_periodic(p) for p in n.rhythm],
            # where the steps' input sizes explain their variation: the figures above of the kinds moved are at one size
            "inputs": None if n.inputs is None else {
                "variation_pct": _r(n.inputs.inputs_pct, 1), "explained_pct": _r(n.inputs.explained * 100, 1),
                "ranks": n.inputs.ranks, "ms_per_million_elements": _r(n.inputs.ms_per_melem, 3),
                "profiled_moved": n.inputs.profiled, "unprofiled_moved": n.inputs.outside,
                "profiled_step_variation_as_came_pct": _r(n.profiled_raw_pct, 1),
                "unprofiled_step_variation_as_came_pct": _r(n.unprofiled_raw_pct, 1)}}


def _periodic(p: Periodic) -> dict[str, Any]:
    return {"period_steps": p.period, "ranks": list(p.ranks), "steps": list(p.steps), "min_ms": _r(p.low_ms),
            "max_ms": _r(p.high_ms), "x_median": _r(p.factor, 1),
            "followers": [{"rank": r, "steps_later": lag} for r, lag in p.followers]}


def _spread(o: RankOverlap) -> dict[str, Any] | None:
    """The step time over the rank's analyzed steps: the mean (outliers left out, each named), median, range."""
    sp = o.spread_ms
    if sp is None:
        return None
    return {"steps": sp.n, "mean_ms": _r(sp.mean), "median_ms": _r(sp.median), "min_ms": _r(sp.low),
            "max_ms": _r(sp.high),
            "outliers": [{"step": n, "step_ms": _r(ms), "why": why} for n, ms, why in o.outliers]}
