"""A real job whose batches vary in sequence length (tests/e2e/varlen_job.py: 2-rank gloo DDP, each rank drawing 48-96
tokens at random each step).  The report read its data as noise: "the traced run was disturbed: profiled steps vary
by 35.5%; steps outside the profiler by 23.2%", advice withheld, "trace again on a quieter machine", which cannot
help.  Now each step's input size is recorded (``capture.inputs``) and the run's noise is judged at one input size
(``uncertainty.inputwork``): the inputs are named, and what remains is the run's noise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import commprof
from commprof.analysis.analyze import Report
from commprof.render.summary import summary

pytestmark = pytest.mark.slow
JOB = Path(__file__).with_name("varlen_job.py")
sys.path.insert(0, str(JOB.parent))
import varlen_job  # noqa: E402


def _traced(out: Path) -> Report:
    subprocess.run([sys.executable, str(JOB), str(out)], check=True, timeout=300, cwd=JOB.parent)
    return commprof.analyze(commprof.load(out))


def test_steps_of_longer_sequences_are_the_jobs_data_not_noise(tmp_path: Path):
    """Measured on a 2-core VM: the inputs explained 90-98% of the steps' variance, 4-5% remained of 17-23%.  A run
    disturbed by other work runs again, up to 3 times; if every run was, the inputs must still be named."""
    for attempt in range(3):
        out = tmp_path / f"run{attempt}"
        rep = _traced(out)
        # what the capture recorded: every step's input, the batch x its drawn length x the width
        for rank in range(varlen_job.WORLD):
            side = commprof.load(out).ranks[rank].sidecar
            assert side is not None
            got = {s.number: s.input_elems for s in side.step_times}
            want = {n: varlen_job.BATCH * length * varlen_job.WIDTH for n, length in
                    enumerate(varlen_job.lengths(rank))}
            assert got == want, (rank, got)
        if not rep.noise.disturbed:
            break
        print(f"\nrun {attempt} disturbed: {rep.noise.describe()}")
    fit = rep.noise.inputs
    if rep.noise.disturbed:  # every run disturbed: what is told must still be right
        assert fit is None or (fit.ranks == 2 and 15 < fit.inputs_pct < 30), fit
        return
    assert fit is not None and fit.ranks == 2 and fit.outside, rep.noise
    assert 15 < fit.inputs_pct < 30, fit  # the job's largest length per step, from the seeds: 22%
    assert fit.explained >= 0.6, fit
    n = rep.noise
    assert n.unprofiled_pct is not None and n.unprofiled_raw_pct is not None
    assert n.unprofiled_pct < 0.6 * n.unprofiled_raw_pct, n
    text = n.describe()
    assert "at one input size (" in text and "the job's data, not a disturbance" in text, text
    row = summary(rep)["noise"]["inputs"]
    assert row["ranks"] == 2 and row["unprofiled_moved"] and row["explained_pct"] >= 60
    assert not any("disturbed" in w for w in rep.warnings), rep.warnings
