"""Hand-built model records for unit tests: lanes, collectives, ranks and runs with only the fields a test sets,
and hand-built event lists read through the real reader (``parse``).  Times are integer ns."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from commprof.model import Collective, Lane, RankTrace, Run, Sidecar, Step


def lane(spans: Sequence[tuple[int, int]] = (), steps: Sequence[int] | None = None,
         launches: Sequence[int] | None = None) -> Lane:
    """A lane of ``[start, end)`` intervals; ``steps`` and ``launches`` per interval (default: step 0, launched at
    its own start)."""
    s = np.array([a for a, _ in spans], dtype=np.int64)
    e = np.array([b for _, b in spans], dtype=np.int64)
    st = np.array(steps if steps is not None else [0] * len(spans), dtype=np.int64)
    la = np.array(launches if launches is not None else s, dtype=np.int64)
    return Lane(s, e, st, la)


def collective(start: int | None, end: int | None, *, op: str = "all_reduce", nbytes: int = 1 << 20,
               issue: int | None = None, step: int = 0, group: str = "0", group_size: int = 2,
               dtype: str = "float32", seq: int | None = None, peer: int | None = None) -> Collective:
    return Collective(op=op, process_group=group, group_size=group_size, dtype=dtype, bytes=nbytes,
                      issue_ns=issue if issue is not None else start, start_ns=start, end_ns=end, step=step, seq=seq,
                      lane="stream 7", peer=peer)


def rank_trace(rank: int = 0, *, steps: Sequence[tuple[int, int, int]] = ((0, 0, 100_000),),
               compute: Lane | None = None, comm: Lane | None = None, collectives: Sequence[Collective] = (),
               world_size: int | None = 2, base_time_ns: int = 0, device_kind: str = "cuda",
               sidecar: Sidecar | None = None, **more: Any) -> RankTrace:
    """A rank with ``steps`` as (number, start, end); comm defaults to the collectives' execution intervals."""
    if comm is None:
        ran = [c for c in collectives if c.start_ns is not None and c.end_ns is not None]
        comm = lane([(c.start_ns or 0, c.end_ns or 0) for c in ran], [c.step for c in ran])
    return RankTrace(rank=rank, world_size=world_size, backend="nccl", path=f"rank{rank}.json",
                     device_kind=device_kind, devices=(), base_time_ns=base_time_ns,
                     steps=tuple(Step(n, a, b) for n, a, b in steps), compute=compute or lane(), comm=comm,
                     memcpy=lane(), collectives=tuple(collectives), process_groups=(), sidecar=sidecar,
                     warnings=(), **more)


def run(*ranks: RankTrace, world_size: int | None = None) -> Run:
    return Run("built", tuple(ranks), world_size if world_size is not None else len(ranks), None, (), ())


def parse(doc: dict[str, Any] | list[Any], name: str = "rank0.json") -> RankTrace:
    """A hand-built chrome-trace document (as torch.profiler would write it) read by the real reader."""
    from commprof.reader import parse_document
    from commprof.reader.decode.jsonio import document
    from commprof.reader.discover import rank_from_name

    return parse_document(Path(name), document(doc, name), rank_hint=rank_from_name(Path(name)))


def ddp_scenario(sizes: Sequence[float], ready_ms: Sequence[float], *, tail_ms: float, cap_bytes: int,
                 alpha_s: float = 0.0, beta_bps: float = 1e9, unprofiled_step_ms: float | None = None,
                 pass_bps: float = 1e10):
    """A DDP replay scenario by hand: gradient bytes and ready times (ms from the step start) in ready order."""
    from commprof.analysis.ddp.rates import OpRates
    from commprof.analysis.ddp.whatif import Scenario

    names = tuple(f"p{i}" for i in range(len(sizes)))
    ready = np.array([t * 1e6 for t in ready_ms], dtype=np.float64)
    profiled = int(max(ready_ms, default=0.0) * 1e6 + tail_ms * 1e6)
    return Scenario(rank=0, names=names, sizes=np.array(sizes, dtype=np.float64), ready_ns=ready,
                    tail_ns=int(tail_ms * 1e6), profiled_step_ns=profiled,
                    unprofiled_step_ns=None if unprofiled_step_ms is None else int(unprofiled_step_ms * 1e6),
                    cap_bytes=cap_bytes, first_bucket_bytes=None, alpha_s=alpha_s, beta_bps=beta_bps,
                    rates=OpRates("cpu", pass_bps, pass_bps), world_size=2)


def fsdp_inputs(units: Sequence[tuple[str, float, float, float, float, float, int, bool]], *, head_ms: float,
                fwd_tail_ms: float, bwd_tail_ms: float):
    """FSDP2 replay inputs by hand: per unit (name, fwd ms, bwd ms, all-gather ms, backward all-gather ms,
    reduce-scatter ms, unsharded bytes, reshard_after_forward), in forward order ("" first: the root)."""
    from commprof.analysis.fsdp.replay import ReplayInputs, UnitTimes

    return ReplayInputs(units=tuple(UnitTimes(name=n, fwd_ns=f * 1e6, bwd_ns=b * 1e6, ag_ns=ag * 1e6,
                                              bwd_ag_ns=bag * 1e6, rs_ns=rs * 1e6, unsharded_bytes=nb, reshard=raf)
                                    for n, f, b, ag, bag, rs, nb, raf in units),
                        head_ns=head_ms * 1e6, fwd_tail_ns=fwd_tail_ms * 1e6, bwd_tail_ns=bwd_tail_ms * 1e6)
