"""The shortest step the ranks' CPU work allows, on CPU runs: a floor under the DDP replay's what-ifs.

The replays take overlapping communication with compute as free: a smaller DDP bucket starts its all-reduce during
the backward pass, and the step shortens by what was exposed.  Over gloo the transfers are CPU work too (copies and
sums on the sending and receiving side; between ranks of one host, all of it), on the cores the backward runs on.
Where those cores are busy already, work moved beside the backward slows it by as much: the step shortens only
where cores were idle.  An outside tester's conv net (2 ranks, 2 cores, loopback, a 34.6 MB bucket 91% exposed):
bucket_cap_mb=0.5 was advised at 131 ms (117-145) against 157 ms; it measured 154-156 ms in three runs.  The ranks'
CPU time per step (the sidecar's ``cpu_ns``: their threads and child processes) was 147 ms each: 294 ms of work on
2 cores, a floor of 147 ms under any arrangement of the same work.

Per group of ranks that may run on the same CPUs (one host, one CPU set, ``uncertainty.hostload``'s groups): the sum
of its ranks' median CPU time per step over their steps outside the profiler (``steptimes.unprofiled_steps``: the
profiler's own work is not the job's), over the set's CPUs; the job's floor is the highest.  Other work on those
CPUs would raise it: it is left out (it comes and goes; the bands carry it), so the floor is a lower bound.  None on
GPU runs (their compute is not the CPUs'), without the sidecar's counters, with ranks missing (their work is
unknown), or where one host's CPU sets overlap without being equal (their work cannot be told apart).  A limit:
OpenMP's idle threads spin for a while before they sleep (intra-op threads over one per rank), CPU time that is no
work; it raises the floor towards the step, so bucket advice is withheld rather than given wrongly.  Only the DDP
replay uses it (FSDP2's replay and the DDP <-> FSDP2 what-ifs do not yet)."""

from __future__ import annotations

import numpy as np

from ...model import RankTrace, Run
from ..steptimes import unprofiled_steps
from ..uncertainty.hostload import cpu_groups, overlapping

# the ranks' CPU work over at least this share of their cores' capacity in the step as it is now: the cores are full,
# and moving transfers between overlap and exposure moves work that shares them (the README demo and an outside
# tester's conv net, 2 ranks on 2 cores over loopback: 93% each; ranks over a 500 Mbit/s link: link-bound, far under)
FULL_SHARE = 0.8


def cpu_floor_ms(run: Run) -> float | None:
    """The job's step can be no shorter than this (ms) without less CPU work (see the module's text), or None."""
    if run.missing_ranks or not run.ranks or any(rt.device_kind != "cpu" for rt in run.ranks):
        return None
    groups = cpu_groups(run)
    if sum(len(m) for m in groups.values()) != len(run.ranks) or any(overlapping(groups, k) for k in groups):
        return None  # a rank's CPUs not recorded, or one host's CPU sets overlapping without being equal
    outside = unprofiled_steps(run)
    floors = []
    for (_host, cpus), members in groups.items():
        work = [_cpu_ms(rt, {n for n, _ms in outside.get(rt.rank, [])}) for rt in members]
        if any(w is None for w in work):
            return None
        floors.append(sum(w for w in work if w is not None) / len(cpus))
    return max(floors) if floors else None


def _cpu_ms(rt: RankTrace, steps: set[int]) -> float | None:
    """The rank's median CPU time per step outside the profiler (ms), None where not recorded."""
    vals = [s.cpu_ns for s in (rt.sidecar.step_times if rt.sidecar is not None else ())
            if s.number in steps and s.cpu_ns is not None]
    return float(np.median(vals)) / 1e6 if vals else None


def floor_text(floor_ms: float, replay_ms: float | None, count: int, full_of_ms: float | None = None) -> str:
    """The finding: the floor, the ``count`` what-ifs it held up (the least the replay gave: ``replay_ms``), and
    where the work fills the cores (``full_of_ms``: the step now), that the bucket what-ifs' bands reach it."""
    text = (f"The ranks' CPU work bounds the step on this host: their CPU time per step outside the profiler, over the "
            f"cores they share, is {floor_ms:.1f} ms, and overlapping communication with compute moves that work, it "
            "does not remove it (over gloo the transfers are CPU work on the cores the backward pass runs on).")
    if count and replay_ms is not None:
        text += (f" {count} what-if{'s' if count != 1 else ''} (other bucket sizes or hooks: the backward's compute is "
                 f"the same under each) {'are' if count != 1 else 'is'} held at {floor_ms:.1f} ms where the replay, "
                 f"which takes overlap as free, gave down to {replay_ms:.1f} ms.")
    if full_of_ms is not None:
        text += (f" That work fills {100 * floor_ms / full_of_ms:.0f}% of the cores over the step as it is now "
                 f"({full_of_ms:.1f} ms): another bucket size moves transfers between the backward pass and the "
                 "step's end and may gain or lose nothing, so the bucket what-ifs' bands reach the step as it is now "
                 "(the replay takes the transfers' speed beside the backward for their speed alone).")
    return text
