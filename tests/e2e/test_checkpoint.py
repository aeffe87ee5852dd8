"""A real job whose rank 0 saves a checkpoint every third step (tests/e2e/checkpoint_job.py: 2-rank gloo DDP,
``torch.save`` of 25 MB flushed to disk at the end of steps 0, 3, 6, 9 and 12; rank 1 waits for it in the next
step).  The report read the run as noise ("steps outside the profiler vary by 62.4%": disturbed, advice withheld),
named rank 1's step 10 a one-off stall and did not name rank 0.  Now the checkpoint steps are periodic slow steps
led by rank 0, rank 1 a step later, left out of the run's noise and named; the root cause names rank 0 and says
what recurs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import commprof
from commprof.analysis.analyze import Report
from commprof.render.summary import summary

pytestmark = pytest.mark.slow
JOB = Path(__file__).with_name("checkpoint_job.py")


def _traced(out: Path) -> Report:
    subprocess.run([sys.executable, str(JOB), str(out)], check=True, timeout=300, cwd=JOB.parent)
    return commprof.analyze(commprof.load(out))


def test_a_checkpoint_every_third_step_on_rank_0_is_periodic_work_it_leads(tmp_path: Path):
    """On a run disturbed by other work (a busy process on one rank's core: its steps doubled at random, and in 1
    of 4 such runs the pattern was not told) the job runs again, up to 3 times; if every run was disturbed, what is
    told must still be right, and the run is named."""
    for attempt in range(3):
        rep = _traced(tmp_path / f"run{attempt}")
        if not rep.noise.disturbed:
            break
        print(f"\nrun {attempt} disturbed: {rep.noise.describe()}")
    else:
        assert all(p.ranks == (0,) and p.period == 3 for p in rep.noise.periodic), rep.noise.periodic
        return
    (p,) = rep.noise.periodic
    assert p.period == 3 and p.ranks == (0,) and p.steps == (3, 6, 9, 12) and p.followers == ((1, 1),), p
    assert p.factor > 1.5
    rows = summary(rep)["noise"]["periodic_left_out"]
    assert [(r["period_steps"], r["ranks"], r["followers"]) for r in rows] == [(3, [0], [{"rank": 1,
                                                                                            "steps_later": 1}])]
    # the periodic steps are no one-off stalls and no part of the run's noise
    periodic = set(p.left_out)
    assert not [s for s in rep.noise.left_out if any((r, s.step) in periodic for r in s.ranks)], rep.noise.left_out
    text = rep.noise.describe()
    assert "periodic slow steps left out: every 3 steps on rank 0 (steps 3, 6, 9, 12: " in text, text
    assert any("every 3 steps on rank 0" in w for w in rep.warnings), rep.warnings
    first = rep.findings[0].text
    assert "slow steps recur: every 3 steps on rank 0" in first and "checkpoint" in first, first
    rc = rep.root_cause
    assert rc is not None and rc.ranks == (0,), first  # rank 0's work is what the others wait for
    assert first.startswith(("Rank 0 holds the job back", "Rank 0 may hold the job back"))
    assert "Its slow steps recur" in first and "check its DataLoader" not in first
