"""Other work on the ranks' CPUs (analysis.uncertainty.hostload) from hand-built sidecars, the counters' reader
on this machine, and what a loaded host does to the noise and the bands."""

from __future__ import annotations

import os
import time

import pytest
from builders import rank_trace, run

from commprof.analysis.uncertainty.hostload import host_loads, other_load_pct
from commprof.analysis.uncertainty.maths import OTHER_LOAD_PCT, Noise, band
from commprof.model import Sidecar, StepTime

MS = 1_000_000


def _rank(rank: int, *, busy_ms: float, own_ms: float, host: str = "h", cpus=(0, 1), steps: int = 10,
          step_ms: float = 100.0, device: str = "cpu"):
    times = tuple(StepTime(n, int(n * step_ms * MS), int((n + 1) * step_ms * MS), False,
                           int(busy_ms * MS), int(own_ms * MS)) for n in range(steps))
    side = Sidecar(path="s", schema="commprof.sidecar/1", run_id="r", rank=rank, world_size=2, backend="gloo",
                   versions={}, device=device, ddp=None, layouts=(), buckets=(), step_times=times, host=host,
                   cpus=cpus)
    return rank_trace(rank, device_kind=device, sidecar=side)


def test_other_work_is_the_cpus_busy_time_less_every_rank_of_the_host():
    # two ranks on two CPUs, 100 ms steps: 200 ms of capacity per step, each rank 60 ms of its own CPU, the CPUs
    # busy 190 ms: 70 ms of other work = 35%
    r = run(_rank(0, busy_ms=190, own_ms=60), _rank(1, busy_ms=190, own_ms=60))
    (load,) = host_loads(r)
    assert load.ranks == (0, 1) and load.cpus == 2 and load.steps == 10
    assert load.other_pct == pytest.approx(35.0)
    assert other_load_pct(r) == pytest.approx(35.0)
    # the ranks' own work alone: nothing else
    assert other_load_pct(run(_rank(0, busy_ms=120, own_ms=60), _rank(1, busy_ms=120, own_ms=60))) == 0.0


def test_hosts_apart_and_what_cannot_be_measured():
    # one rank per host: each host's CPUs against its own rank only; the most loaded host counts
    r = run(_rank(0, busy_ms=100, own_ms=90, host="a"), _rank(1, busy_ms=180, own_ms=90, host="b"))
    assert sorted(round(h.other_pct) for h in host_loads(r)) == [5, 45]
    assert other_load_pct(r) == pytest.approx(45.0)
    # overlapping but unequal CPU sets on one host: each rank's busy time holds its peer's work: not measured
    assert host_loads(run(_rank(0, busy_ms=150, own_ms=60, cpus=(0, 1)),
                          _rank(1, busy_ms=150, own_ms=60, cpus=(1, 2)))) == ()
    # too little capacity to read 10 ms ticks (3 steps of 100 ms on 2 CPUs = 0.6 s): not measured
    assert host_loads(run(_rank(0, busy_ms=190, own_ms=60, steps=3), _rank(1, busy_ms=190, own_ms=60, steps=3))) == ()
    # GPU ranks: the host's load need not slow their step: reported per host, not in the noise
    gpu = run(_rank(0, busy_ms=190, own_ms=60, device="cuda"), _rank(1, busy_ms=190, own_ms=60, device="cuda"))
    assert host_loads(gpu) and other_load_pct(gpu) is None
    # a rank of the job not loaded: its CPU time on the same CPUs would read as other work
    from dataclasses import replace
    alone = run(_rank(0, busy_ms=190, own_ms=60))
    assert host_loads(alone) and host_loads(replace(alone, missing_ranks=(1,))) == ()


def test_a_loaded_host_is_disturbed_and_widens_the_bands():
    quiet, loaded = Noise(unprofiled_pct=2.0, other_load_pct=3.0), Noise(unprofiled_pct=2.0, other_load_pct=48.0)
    assert not quiet.disturbed and loaded.disturbed and OTHER_LOAD_PCT < 48.0
    assert "other work used 48% of the ranks' CPUs" in loaded.describe()
    lo, hi = band(200.0, loaded, 1.0)
    assert hi - 200.0 > 0.48 * 200.0 and band(200.0, quiet, 1.0)[1] - 200 <= 0.15 * 200


def test_the_counters_on_this_machine_see_this_process():
    from commprof.capture.hostload import HostSampler

    h = HostSampler()
    if not h.ok:
        pytest.skip("no /proc/stat or affinity here")
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})  # on one CPU: its counts alone carry the loop's time
    try:
        a = h.sample()
        t = time.process_time()
        while time.process_time() - t < 0.3:  # 300 ms of this process's CPU
            pass
        b = h.sample()
    finally:
        os.sched_setaffinity(0, cpus)
    assert a is not None and b is not None
    own_ms, busy_ms = (b[1] - a[1]) / 1e6, (b[0] - a[0]) / 1e6
    assert 290 <= own_ms <= 400
    # the CPU was busy at least while this process ran on it: /proc/stat keeps whole 10 ms units per field (user,
    # system) and CPU, each cut at both samples (unpinned, a 2-core VM read 280 ms busy against 300.1 ms run)
    assert busy_ms >= own_ms - 30
