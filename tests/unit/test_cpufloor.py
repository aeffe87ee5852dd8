"""The CPU floor under the what-ifs that keep the ranks' CPU work (``analysis.replay.cpufloor``): from hand-built
sidecars, and on a real conv net's trace where the replay took overlap as free."""

from __future__ import annotations

from dataclasses import replace

import pytest
from builders import rank_trace, run

from commprof.analysis.replay.cpufloor import cpu_floor_ms, floor_text
from commprof.model import Sidecar, StepTime

MS = 1_000_000


def _rank(rank: int, own_ms: float, host: str = "h", cpus=(0, 1), device: str = "cpu", profiled_own_ms: float = 0.0):
    """10 steps of 100 ms, steps 1-3 profiled (their CPU time ``profiled_own_ms``: the profiler's own work)."""
    times = tuple(StepTime(n, int(n * 100 * MS), int((n + 1) * 100 * MS), 1 <= n <= 3, int(190 * MS),
                           int((profiled_own_ms if 1 <= n <= 3 else own_ms) * MS)) for n in range(10))
    side = Sidecar(path="s", schema="commprof.sidecar/1", run_id="r", rank=rank, world_size=2, backend="gloo",
                   versions={}, device=device, ddp=None, layouts=(), buckets=(), step_times=times, host=host,
                   cpus=cpus)
    return rank_trace(rank, device_kind=device, sidecar=side)


def test_the_floor_is_the_work_of_the_ranks_sharing_cpus_over_those_cpus():
    # two ranks on two CPUs, each 90 ms of CPU per step outside the profiler: no arrangement fits it in under 90 ms;
    # the profiled steps' CPU time (the profiler's own work in it) is not the job's
    assert cpu_floor_ms(run(_rank(0, 90, profiled_own_ms=150), _rank(1, 90, profiled_own_ms=150))) == pytest.approx(90)
    # one rank per host: each host's work over its own CPUs, the highest counts
    assert cpu_floor_ms(run(_rank(0, 90, host="a"), _rank(1, 60, host="b"))) == pytest.approx(45)
    # pinned to a CPU each on one host: one CPU's work each
    assert cpu_floor_ms(run(_rank(0, 90, cpus=(0,)), _rank(1, 70, cpus=(1,)))) == pytest.approx(90)


def test_no_floor_where_the_work_cannot_be_told():
    assert cpu_floor_ms(run(_rank(0, 90, device="cuda"), _rank(1, 90, device="cuda"))) is None  # GPU compute
    assert cpu_floor_ms(run(_rank(0, 90, cpus=(0, 1)), _rank(1, 90, cpus=(1, 2)))) is None  # overlapping sets
    assert cpu_floor_ms(replace(run(_rank(0, 90)), missing_ranks=(1,))) is None  # a rank's work unknown
    assert cpu_floor_ms(run(_rank(0, 90), rank_trace(1))) is None  # no sidecar


def test_the_finding_says_what_holds_the_what_ifs():
    text = floor_text(146.1, 130.9, 8)
    assert "146.1 ms" in text and "130.9 ms" in text and "8 what-ifs" in text and "moves that work" in text
