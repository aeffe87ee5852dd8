"""``summary.json`` (schema ``commprof.summary/1``): the stable keys of DESIGN.md, and more beside them."""

from __future__ import annotations

from typing import Any

import orjson

from .._version import __version__
from ..analysis.analyze import Report
from ..analysis.dataparallel import DataParallelStat
from ..analysis.memory import Memory
from ..analysis.overlap import RankOverlap
from ..analysis.volume import CollectiveStat
from ..formats import files
from .fsdp import as_dict as fsdp_dict
from .memdict import churn_dict, parallel_dict, whatif_items
from .monitor import hang_dict, monitor_dict

SCHEMA = files.SUMMARY_SCHEMA


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def summary(rep: Report) -> dict[str, Any]:
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
        "steps_analyzed": sorted({s.step for o in rep.overlaps for s in o.steps}),
        "ranks": [_rank(rep, o) for o in rep.overlaps],
        "collectives": [_collective(c) for c in rep.collectives],
        "buckets": [{"index": b.index, "bytes": b.bytes, "params": b.params, "ready_ms": _r(b.ready_ms),
                     "launch_ms": _r(b.launch_ms), "comm_ms": _r(b.comm_ms), "exposed_ms": _r(b.exposed_ms)}
                    for b in rep.buckets],
        "stragglers": [{"rank": s.rank, "late_count": s.late_count, "mean_late_ms": _r(s.mean_late_ms),
                        "instances": s.instances, "late_compute_ms": _r(s.compute_ms),
                        "late_comm_ms": _r(s.comm_ms), "late_idle_ms": _r(s.idle_ms)}
                       for s in cross.stragglers],
        "clock_offsets_ms": {str(r): _r(v / 1e6) for r, v in sorted(cross.offsets_ns.items())},
        "straggler_threshold_ms": _r(cross.threshold_ns / 1e6),
        "clock_reference_rank": cross.reference_rank,
        **_bandwidth(rep),
        "findings": [{"severity": f.severity, "text": f.text} for f in rep.findings],
        "advice": [{"knob": a.knob, "value": a.value, "baseline_step_ms": _r(a.baseline_step_ms),
                    "predicted_step_ms": _r(a.predicted_step_ms), "why": a.why, "with": dict(a.with_settings)}
                   for a in rep.advice],
        "whatif": [{"knob": w.knob, "value": w.value, "predicted_step_ms": _r(w.step_ms),
                    "predicted_exposed_ms": _r(w.exposed_ms), "assumed": list(w.assumed)}
                   for w in rep.advisor.whatifs],
        "advisor": _advisor(rep),
        "pipeline": _pipeline(rep),
        "memory": [_memory(m) for m in rep.memory],
        "churn": [churn_dict(c) for c in rep.churn],
        "whatifs": whatif_items(rep.parallel),
        "parallelism": parallel_dict(rep.parallel),
        "dataparallel": [_dataparallel(d) for d in rep.dataparallel],
        "transfers": [{"rank": t.rank, "htod_pageable_per_step": _r(t.htod_pageable_count, 1),
                       "htod_pageable_bytes_per_step": int(t.htod_pageable_bytes),
                       "htod_pageable_ms": _r(t.htod_pageable_ms), "htod_exposed_ms": _r(t.htod_exposed_ms),
                       "dtoh_pageable_per_step": _r(t.dtoh_pageable_count, 1),
                       "host_syncs_per_step": _r(t.sync_count, 1), "host_sync_ms": _r(t.sync_ms)}
                      for t in rep.transfers],
        "fsdp": fsdp_dict(rep.fsdp),
        "hang": hang_dict(rep.monitor.hang) if rep.monitor is not None else None,
        "monitor": monitor_dict(rep.monitor) if rep.monitor is not None else None,
        "warnings": list(rep.warnings),
    }


def _rank(rep: Report, o: RankOverlap) -> dict[str, Any]:
    """One rank's row: the figures of its median step (they add up), its mean step, its whole window."""
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
        "median_step": s.step if s else None,
        "cpu_step_ms": _ms(cpu_steps.get(s.step)) if s else None,
        "wait_ms": _r(rep.cross.wait_ms_per_step.get(o.rank)),
        "step_ms_unprofiled": _r(rep.unprofiled_step_ms.get(o.rank)),
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
    }


def _ms(ns: float | None) -> float | None:
    return None if ns is None else _r(ns / 1e6)


def _collective(c: CollectiveStat) -> dict[str, Any]:
    return {"op": c.op, "process_group": c.process_group, "group_size": c.group_size, "dtype": c.dtype,
            "count": _r(c.count, 2), "bytes": int(round(c.bytes)), "time_ms": _r(c.time_ns / 1e6),
            "algbw_gbps": _r(c.algbw_gbps), "busbw_gbps": _r(c.busbw_gbps), "ranks": c.ranks,
            "executed": c.executed, "total_count": c.total_count, "via": c.via or None,
            "bytes_unknown_count": c.unknown_size}


def _bandwidth(rep: Report) -> dict[str, Any]:
    return {
        "bandwidth_bins": [{"op": b.op, "process_group": b.process_group, "group_size": b.group_size,
                            "lo_bytes": b.lo_bytes, "hi_bytes": b.hi_bytes, "count": b.count, "bytes": b.bytes,
                            "transfer_ms": _r(b.time_ns / 1e6), "algbw_gbps": _r(b.algbw_gbps),
                            "busbw_gbps": _r(b.busbw_gbps)} for b in rep.bandwidth.bins],
        "bandwidth_model": [{"op": f.op, "process_group": f.process_group, "group_size": f.group_size,
                             "points": f.points, "alpha_us": _r(f.alpha_us), "beta_gbps": _r(f.beta_gbps),
                             "busbw_gbps": _r(f.busbw_gbps), "peak_gbps": _r(f.peak_gbps),
                             "peak_source": f.peak_source, "pct_of_peak": _r(f.pct_of_peak, 1)}
                            for f in rep.bandwidth.fits],
    }


def _advisor(rep: Report) -> dict[str, Any]:
    a = rep.advisor
    c = a.check
    return {"baseline_step_ms": _r(a.baseline_step_ms), "model_profiled_step_ms": _r(a.model_step_ms),
            "measured_profiled_step_ms": _r(a.profiled_step_ms),
            "compute_scale": {str(k): _r(v, 4) for k, v in a.scale.items()},
            "model_check": None if c is None else {
                "rank": c.rank, "step_model_ms": _r(c.step_model_ms), "step_measured_ms": _r(c.step_measured_ms),
                "error_pct": _r(c.error_pct, 1), "within_tolerance": c.ok,
                "exposed_model_ms": _r(c.exposed_model_ms), "exposed_measured_ms": _r(c.exposed_measured_ms),
                "source": c.source, "notes": list(c.notes)},
            "rates": None if a.rates is None else {
                "pass_gbps": _r(a.rates.pass_bps / 1e9), "fresh_gbps": _r(a.rates.fresh_bps / 1e9),
                "products_measured": len(a.rates.products), "sources": dict(sorted(a.rates.sources.items()))}}


def _memory(m: Memory) -> dict[str, Any]:
    return {"rank": m.rank, "device": m.device, "peak_allocated_bytes": m.peak_allocated,
            "peak_reserved_bytes": m.peak_reserved, "device_total_bytes": m.total, "pct_of_device": _r(m.pct, 1),
            "ddp_bucket_bytes": m.bucket_bytes, "ddp_buckets_are_a_copy": m.bucket_copy,
            "compression_persistent_bytes": m.compression_persistent,
            "compression_transient_bytes": m.compression_transient}


def _dataparallel(d: DataParallelStat) -> dict[str, Any]:
    return {"rank": d.rank, "devices": list(d.devices), "steps": d.steps, "step_ms": _r(d.step_ms),
            "overhead_ms": _r(d.overhead_ms), "grad_bytes": d.grad_bytes,
            "device_busy_ms": {str(k): _r(v) for k, v in d.device_busy_ms.items()},
            "ddp_estimate_step_ms": _r(d.ddp_step_ms), "ddp_allreduce_ms": _r(d.ddp_allreduce_ms),
            "ddp_exposed_ms": _r(d.ddp_exposed_ms),
            "phases": [{"name": p.name, "calls_per_step": _r(p.calls_per_step, 1), "bytes_per_step": p.bytes_per_step,
                        "copied_bytes_per_step": p.copied_bytes_per_step, "host_ms": _r(p.host_ms),
                        "gpu_ms": _r(p.gpu_ms), "busy_ms": _r(p.busy_ms)} for p in d.phases]}


def render(rep: Report) -> bytes:
    return orjson.dumps(summary(rep), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


def _pipeline(rep: Report) -> dict[str, Any] | None:
    p = rep.pipeline
    if p is None:
        return None

    def part(q) -> dict[str, Any] | None:
        if q is None:
            return None
        return {"split": list(q.split), "slowest_stage_ms": _r(q.slowest_stage_ms), "step_ms": _r(q.step_ms)}

    return {
        "layers": [{"name": lay.name, "stage": lay.stage, "fwd_ms": _r(lay.fwd_ms), "bwd_ms": _r(lay.bwd_ms),
                    "out_bytes": lay.out_bytes} for lay in p.layers],
        "stages": [{"rank": s.rank, "layers": s.layers, "compute_ms": _r(s.compute_ms), "bubble_ms": _r(s.bubble_ms),
                    "microbatches": s.microbatches, "sent_bytes_per_microbatch": s.sent_bytes,
                    "transfer_ms_per_microbatch": _r(s.transfer_ms)} for s in p.stages],
        "current": part(p.current), "advised": part(p.best),
        "link_gbps": _r(p.link_bps / 1e9) if p.link_bps else None,
    }
