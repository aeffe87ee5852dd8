"""A real 2-rank gloo job traced beside a busy process: the sidecars' CPU counters show the other work, the report
calls the traced run disturbed and says why (steady load that step-to-step variation need not show)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

pytestmark = pytest.mark.slow


def test_a_busy_process_beside_the_traced_run_is_seen(tmp_path):
    import commprof
    from commprof.analysis.uncertainty.hostload import host_loads
    from commprof.analysis.uncertainty.maths import DISTURBED_PCT, OTHER_LOAD_PCT, variation_low_pct
    from commprof.workloads.demo import launch

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        # steps of about 100 ms or more: the counters tick in 10 ms, and a share needs 1 s of CPU capacity
        launch(tmp_path / "t", nproc=2, steps=12, width=1024, layers=4, batch=512)
    finally:
        busy.kill()
        busy.wait()
    run = commprof.load(tmp_path / "t")
    (load,) = host_loads(run)  # both ranks on this host, one group
    assert load.ranks == (0, 1) and load.steps >= 8
    rep = commprof.analyze(run)
    print(f"\nother work: {load.other_pct:.0f}% of {load.cpus} CPUs over {load.steps} steps; {rep.noise.describe()}")
    # one busy loop takes up to one CPU of ``cpus``; under a fair scheduler, beside two ranks of up to two runnable
    # threads each (compute, gloo), at least 2/5 of a CPU on two CPUs (measured here: 34% of two CPUs)
    assert rep.noise.other_load_pct == pytest.approx(load.other_pct)
    assert load.other_pct >= 0.35 * 100.0 / load.cpus
    steps_low = variation_low_pct(rep.noise.step_pct, rep.noise.step_count)  # beyond what its steps show by chance
    assert rep.noise.disturbed == (load.other_pct > OTHER_LOAD_PCT or steps_low > DISTURBED_PCT
                                   or (rep.noise.rates_pct or 0.0) > 2 * DISTURBED_PCT)
    if load.cpus <= 3:  # a busy core of two or three: the run is disturbed, and the report says so first
        assert rep.noise.disturbed and "other work used" in rep.noise.describe()
    # the loop thread's wait for a CPU, where the kernel keeps the account: beside a busy loop on two CPUs a large
    # share of its ready time (the demo: 45-48%, quiet 20-23%), and where the other work disturbed the run every
    # band reaches lower by the larger of the wait and that work
    if rep.noise.cpu_wait_pct is not None and load.cpus == 2:
        assert rep.noise.cpu_wait_pct >= 25.0 and "waited for a CPU" in rep.noise.describe()
    if rep.noise.cpu_wait_pct is not None and load.other_pct > OTHER_LOAD_PCT:
        slowed_frac = max(rep.noise.cpu_wait_pct, load.other_pct) / 100
        banded = [w for s in rep.sections for w in s.whatifs if w.predicted_range_ms is not None]
        assert banded  # the DDP what-ifs
        for w in banded:
            assert w.predicted_range_ms[0] <= w.predicted_step_ms * (1 - slowed_frac) + 1e-6


UNLOADED_WAIT_PCT = 25.0  # rank 0's wait beyond which its core was busy too (quiet runs: 2-9%; CI 100 read 50%)


def test_a_busy_process_on_one_ranks_core_is_named_with_its_evidence(tmp_path):
    """Ranks bound to a core each (as a launcher binds them) and a busy process on rank 1's core: rank 1's training
    thread waits for a CPU far more than its peer's (measured here: 55-69% against 2-9%), and the root-cause finding
    says so, whether it names rank 1 (in about half of such runs: "Rank 1 holds (or may hold) the job back ... Its
    training thread waited ...") or no rank, its verdict held back by a step where rank 0 was slow too ("A lead: rank
    1 ...")."""
    import os

    import commprof
    from commprof.analysis.uncertainty.hostload import wait_by_rank
    from commprof.workloads.demo import launch

    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs and CPU affinity")
    cpu = sorted(os.sched_getaffinity(0))[1]  # where ``pin`` binds rank 1

    def traced(out):
        busy = subprocess.Popen([sys.executable, "-c",
                                 f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"])
        try:
            launch(out, nproc=2, steps=12, pin=True)
        finally:
            busy.kill()
            busy.wait()
        run = commprof.load(out)
        return run, wait_by_rank(run)

    run, waits = traced(tmp_path / "t")
    if waits and waits[0] > UNLOADED_WAIT_PCT:  # rank 0's core was taken too: a disturbance the test did not make
        warnings.warn(f"rank 0, whose core the test leaves alone, waited for a CPU {waits[0]:.0f}% of its ready time "
                      f"(quiet: 2-9%): other work on this machine; running the job once more", stacklevel=1)
        run, waits = traced(tmp_path / "again")
    if not waits:
        pytest.skip("the kernel keeps no scheduler account (CONFIG_SCHED_INFO)")
    rep = commprof.analyze(run)
    cause = rep.section("crossrank").detail.critical.cause
    verdict = next((f.text for f in rep.findings if "the job back" in f.text), "no root-cause finding")
    print(f"\nwaits {waits}; {verdict}")
    # rank 1 shares its core with an always-runnable loop: it waits for it about half of its ready time
    assert waits[1] - waits[0] >= 20.0
    if cause.ranks:
        assert cause.ranks == (1,) and "Its training thread waited for a CPU" in verdict
    else:
        assert cause.spread[0][0] == 1 and "A lead: rank 1, with the largest share of the path" in verdict
