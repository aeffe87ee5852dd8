"""The ranks' CPU wait (analysis.uncertainty.hostload.cpu_wait_pct) from hand-built sidecars, the scheduler's
counters on this machine, and what the wait does to a band: its low end only, where other work disturbed the run."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import pytest
from builders import rank_trace, run

from commprof.analysis.uncertainty.hostload import cpu_wait, wait_by_rank
from commprof.analysis.uncertainty.maths import Noise, band, contention_pct, half_width_pct, lower_factor
from commprof.model import Sidecar, StepTime

MS = 1_000_000


def cpu_wait_pct(r) -> float | None:
    found = cpu_wait(r)
    return found[1] if found is not None else None


def _rank(rank: int, sched: list[tuple[int, int] | None], device: str = "cpu", host: str = "h",
          busy_ms: float = 150.0):
    """100 ms steps on two CPUs, the rank's own CPU 60 ms per step, the CPUs ``busy_ms`` busy."""
    times = tuple(StepTime(n, n * 100 * MS, (n + 1) * 100 * MS, False, int(busy_ms * MS), 60 * MS,
                           *(s if s is not None else (None, None)))
                  for n, s in enumerate(sched))
    side = Sidecar(path="s", schema="commprof.sidecar/1", run_id="r", rank=rank, world_size=2, backend="gloo",
                   versions={}, device=device, ddp=None, layouts=(), buckets=(), step_times=times, host=host,
                   cpus=(0, 1))
    return rank_trace(rank, device_kind=device, sidecar=side)


def test_the_wait_is_the_share_of_the_ready_time_of_the_most_waiting_rank():
    # the first step (start-up: 900 ms waited) is left out; rank 0 ran 60 and waited 40 ms per step: 40%;
    # rank 1 waited 10 of 100 ms: 10%; the job's figure is the most waiting rank's
    r = run(_rank(0, [(100 * MS, 900 * MS)] + [(60 * MS, 40 * MS)] * 9),
            _rank(1, [(90 * MS, 10 * MS)] * 10))
    assert cpu_wait_pct(r) == pytest.approx(40.0) and cpu_wait(r) == (0, pytest.approx(40.0))
    assert wait_by_rank(r) == {0: pytest.approx(40.0), 1: pytest.approx(10.0)}
    # steps without the account (a kernel that stopped keeping it) are left out of the sums
    r = run(_rank(0, [None, (80 * MS, 30 * MS), None, (80 * MS, 20 * MS)] + [None] * 8))
    assert cpu_wait_pct(r) == pytest.approx(100.0 * 50 / (160 + 50))


def test_the_wait_comes_from_the_host_whose_load_is_reported():
    # host a: quiet (its CPUs busy with its rank alone) but its rank waits 40% (threads on too few cores); host b:
    # loaded (other work 45%), its rank waits 10%: the wait beside the load is b's, never a's
    r = run(_rank(0, [(60 * MS, 40 * MS)] * 10, host="a", busy_ms=60.0),
            _rank(1, [(90 * MS, 10 * MS)] * 10, host="b", busy_ms=150.0))
    assert cpu_wait_pct(r) == pytest.approx(10.0)


def test_what_cannot_be_measured_is_none():
    assert cpu_wait_pct(run(_rank(0, [None] * 10))) is None  # no schedstats recorded (older sidecars, other OS)
    assert cpu_wait_pct(run(_rank(0, [(1 * MS, 1 * MS)] * 10))) is None  # 18 ms of ready time: too little to read
    gpu = run(_rank(0, [(60 * MS, 40 * MS)] * 10, device="cuda"))
    assert cpu_wait_pct(gpu) is None  # a GPU rank's step need not slow with its host: no band term
    assert wait_by_rank(gpu) == {0: pytest.approx(40.0)}  # ... but its thread's wait is evidence for a host-bound cause


def test_the_wait_lowers_the_low_end_where_other_work_disturbed_the_run():
    # beside a busy process: other work 40% of the CPUs, the loop thread waited 46% of its ready time
    loaded = Noise(unprofiled_pct=2.0, other_load_pct=40.0)
    waited = Noise(unprofiled_pct=2.0, other_load_pct=40.0, cpu_wait_pct=46.0)
    lo_l, hi_l = band(200.0, loaded, 1.0)
    lo_w, hi_w = band(200.0, waited, 1.0)
    assert hi_w == hi_l  # advice rests on the high end: the wait never loosens it
    h = half_width_pct(loaded, 1.0) / 100
    rest = math.sqrt(h * h - 0.4 * 0.4)  # the half-width without the other load, which the one-sided term replaces
    assert lo_w == pytest.approx(200.0 * (1 - rest) * (1 - 0.46)) and lo_w < lo_l
    assert contention_pct(waited) == 46.0 and lower_factor(waited) == pytest.approx(0.54)
    # the load read higher than the wait: the larger of the two
    assert contention_pct(Noise(other_load_pct=40.0, cpu_wait_pct=25.0)) == 40.0
    assert "a rank's training thread waited for a CPU 46% of the time it was ready to run" in waited.describe()
    assert "rank 1's training thread waited" in Noise(cpu_wait_pct=46.0, cpu_wait_rank=1).describe()


def test_without_other_work_the_wait_is_the_jobs_own_and_lowers_nothing():
    # a quiet run whose ranks' threads wait for each other (gloo's beside the compute on two cores: 20-23%)
    quiet, own = Noise(unprofiled_pct=2.0, other_load_pct=3.0), Noise(unprofiled_pct=2.0, other_load_pct=3.0,
                                                                       cpu_wait_pct=22.0)
    assert band(200.0, own, 1.0) == band(200.0, quiet, 1.0)
    assert contention_pct(own) is None and lower_factor(own) == lower_factor(None) == 1.0
    assert "waited for a CPU" not in quiet.describe()
    assert "waited for a CPU 22% of the time it was ready to run (other work was light: the job's own threads" \
        in own.describe()


def test_the_scheduler_counters_on_this_machine_see_contention():
    """This thread and a busy process on one CPU: the thread waits for it about as long as it runs."""
    from commprof.capture.hostload import HostSampler

    h = HostSampler()
    first = h.sample()
    if first is None or first.run_ns is None or not hasattr(os, "sched_setaffinity"):
        pytest.skip("no scheduler account (CONFIG_SCHED_INFO) or affinity here")
    cpus = os.sched_getaffinity(0)
    one = min(cpus)
    busy = None
    try:
        os.sched_setaffinity(0, {one})  # this thread
        busy = subprocess.Popen([sys.executable, "-c",
                                 f"import os\nos.sched_setaffinity(0, {{{one}}})\nwhile True: pass"])
        time.sleep(0.3)  # the loop is running
        a = h.sample()
        t = time.monotonic()
        while time.monotonic() - t < 0.6:  # 600 ms of wall time wanting the CPU the loop holds
            pass
        b = h.sample()
    finally:
        h.close()
        if busy is not None:
            busy.kill()
            busy.wait()
        os.sched_setaffinity(0, cpus)
    assert a is not None and b is not None and a.run_ns is not None and b.run_ns is not None
    assert a.tid == b.tid == first.tid
    ran_ns, waited_ns = b.run_ns - a.run_ns, (b.wait_ns or 0) - (a.wait_ns or 0)
    print(f"\nran {ran_ns / MS:.0f} ms, waited {waited_ns / MS:.0f} ms over 600 ms beside a busy loop on CPU {one}")
    assert ran_ns + waited_ns >= 0.3e9  # the account ticks: this thread wanted the CPU all along
    # a fair scheduler gives each of two always-runnable processes half the CPU: the wait is a large share
    assert waited_ns >= 0.25 * (ran_ns + waited_ns)


def test_a_gpu_runs_sampler_reads_the_loop_threads_account_alone():
    import threading

    from commprof.capture.hostload import HostSampler

    h = HostSampler(on=False)  # as a GPU run's capture makes it
    c = h.sample()
    h.close()
    if c is None:
        pytest.skip("no scheduler account here")
    assert c.busy_ns is None and c.cpu_ns is None  # the CPU counters are not read
    assert c.run_ns is not None and c.run_ns > 0 and c.tid == threading.get_native_id()
