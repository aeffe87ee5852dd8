"""Other work on the ranks' CPUs during the traced steps, from the sidecar's CPU counters
(``commprof.capture.hostload``).

Per host, the ranks that may run on the same CPUs (the same affinity) form a group: over the steps every rank of
the group recorded, the busy time of those CPUs (the median of the ranks' readings: they read the same counters
over the same steps) less the CPU time of the group's ranks (threads and child processes) is other work; as a
share of the CPUs' capacity (the steps' wall time x the CPUs).  Ranks of a host whose CPU sets overlap without
being equal cannot be told apart from each other's load: such a host is not measured, nor a run with ranks missing
(their CPU time is no other work).  The counters tick in
10 ms, so a group needs ``MIN_CAPACITY_S`` of CPU capacity over its steps to be measured at all.

Beside it, each rank's **CPU wait** (``wait_by_rank``, ``cpu_wait``): of the time its training loop's thread was
ready to run over its steps (the scheduler's account: ran + waited), the share it waited for a CPU.  Other work
averaged over the CPUs misses where it lands: a busy process pinned to one core of two reads 30-48% of the CPUs and
slows a synchronous job up to 2x.  Measured on the README demo (20 steps, 2 ranks, 2 cores): quiet 64 ms per step,
the loop thread waiting 11-13 ms of it (20-23%: gloo's threads and the peer rank's share the two cores); beside such
a process 110 ms, waiting 43-48 ms (45-47%): the extra wait is 70% of the extra step (over 20 traced demos,
benchmarks/results/bench_demo_bands.txt runs 6-7: quiet 20-22%, busy 43-52% beside other work of 39-48%).  The wait
the ranks cause each other stays in the next run, so the bands use it only where other work disturbed the run
(``maths.contention_pct``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ...model import RankTrace, Run

MIN_CAPACITY_S = 1.0  # 100 clock ticks: below that, a tick more or less is over 1% of the share
MIN_READY_S = 0.05  # a rank's ready time (ran + waited) over its steps below which its wait share is not taken


@dataclass(frozen=True, slots=True, kw_only=True)
class HostLoad:
    """Other work on one group of ranks' CPUs over the steps they all recorded."""

    host: str
    ranks: tuple[int, ...]
    cpus: int
    steps: int
    other_pct: float  # % of the CPUs' capacity used by anything but these ranks


def host_loads(run: Run) -> tuple[HostLoad, ...]:
    """One entry per measurable group of ranks sharing CPUs (see the module's docstring); none where ranks of the
    job are not loaded: a missing rank may have run on those CPUs, and its CPU time would read as other work (rank 0
    of a 2-rank job alone read 77% other work, with both ranks 65%)."""
    if run.missing_ranks:
        return ()
    groups = cpu_groups(run)
    out = []
    for (host, cpus), members in sorted(groups.items()):
        if overlapping(groups, (host, cpus)):
            continue  # overlapping, unequal CPU sets on one host: each rank's busy time holds its peers' work
        load = _group_load(host, cpus, members)
        if load is not None:
            out.append(load)
    return tuple(out)


CpuSet = tuple[str, tuple[int, ...]]  # (host, the CPUs a rank may run on)


def cpu_groups(run: Run) -> dict[CpuSet, list[RankTrace]]:
    """The ranks whose sidecar records their host and CPU set, grouped by both: ranks that may share CPUs."""
    groups: dict[CpuSet, list[RankTrace]] = defaultdict(list)
    for rt in run.ranks:
        sc = rt.sidecar
        if sc is not None and sc.host and sc.cpus:
            groups[(sc.host, sc.cpus)].append(rt)
    return dict(groups)


def overlapping(groups: dict[CpuSet, list[RankTrace]], key: CpuSet) -> bool:
    """Whether another group of the same host shares some of ``key``'s CPUs without having the same set."""
    host, cpus = key
    return any(h == host and c != cpus and set(c) & set(cpus) for h, c in groups)


def _group_load(host: str, cpus: tuple[int, ...], members: list[RankTrace]) -> HostLoad | None:
    per_rank = []
    for rt in members:
        steps = rt.sidecar.step_times if rt.sidecar is not None else ()
        per_rank.append({s.number: s for s in steps if s.host_busy_ns is not None and s.cpu_ns is not None})
    common = set.intersection(*(set(p) for p in per_rank)) if per_rank else set()
    if not common:
        return None
    wall = float(np.median([sum(p[n].end_ns - p[n].start_ns for n in common) for p in per_rank]))
    busy = float(np.median([sum(p[n].host_busy_ns or 0 for n in common) for p in per_rank]))
    own = float(sum(sum(p[n].cpu_ns or 0 for n in common) for p in per_rank))
    capacity = wall * len(cpus)
    if capacity < MIN_CAPACITY_S * 1e9:
        return None
    other = min(max(busy - own, 0.0) / capacity, 1.0)
    return HostLoad(host=host, ranks=tuple(sorted(rt.rank for rt in members)), cpus=len(cpus), steps=len(common),
                    other_pct=100.0 * other)


def other_load_pct(run: Run, loads: tuple[HostLoad, ...] | None = None) -> float | None:
    """The most loaded group's share of other work, on CPU runs (where the ranks' compute runs on those CPUs);
    None where nothing measured it or the ranks compute on GPUs (whose step the host's load need not slow).
    ``loads``: ``host_loads(run)`` where the caller has it."""
    if any(rt.device_kind != "cpu" for rt in run.ranks):
        return None
    loads = host_loads(run) if loads is None else loads
    return max(h.other_pct for h in loads) if loads else None


def wait_by_rank(run: Run) -> dict[int, float]:
    """Each rank's share of its loop thread's ready time spent waiting for a CPU over its steps after the first (the
    job's start-up), where recorded (CPU and GPU runs: on GPUs the thread launches the work)."""
    return {rt.rank: s for rt in run.ranks if (s := _wait_share(rt)) is not None}


def cpu_wait(run: Run, loads: tuple[HostLoad, ...] | None = None) -> tuple[int, float] | None:
    """(rank, share) of the most waiting rank of the group ``other_load_pct`` reports (the load and the wait of one
    host, never one host's load beside another's wait); CPU runs only (the bands' term: a GPU step need not slow
    with its host), None where not recorded."""
    if any(rt.device_kind != "cpu" for rt in run.ranks):
        return None
    loads = host_loads(run) if loads is None else loads
    waits = wait_by_rank(run)
    if not loads or not waits:
        return None
    group = max(loads, key=lambda h: h.other_pct).ranks
    shares = [(w, r) for r, w in waits.items() if r in group]
    if not shares:
        return None
    share, rank = max(shares)
    return rank, share


def _wait_share(rt: RankTrace) -> float | None:
    steps = sorted(rt.sidecar.step_times, key=lambda s: s.number)[1:] if rt.sidecar is not None else []
    sched = [(s.sched_run_ns, s.sched_wait_ns) for s in steps
             if s.sched_run_ns is not None and s.sched_wait_ns is not None]
    ran, waited = sum(r for r, _ in sched), sum(w for _, w in sched)
    return 100.0 * waited / (ran + waited) if ran + waited >= MIN_READY_S * 1e9 else None
