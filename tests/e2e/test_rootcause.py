"""Who holds the job back, on real 4-rank gloo jobs (tests/e2e/subgroup_job.py): two subgroups of 2 made with
new_group, a subgroup all-reduce after each layer, world all-reduces in the backward pass.  One rank sleeping
before each subgroup all-reduce is the root cause; without the sleep no single rank is named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import commprof
from commprof.analysis.crossrank.chance import weak

pytestmark = pytest.mark.slow
JOB = Path(__file__).with_name("subgroup_job.py")
SLEEP_US = 900.0


def _job(out: Path, slow: int, sleep_us: float) -> commprof.Report:
    subprocess.run([sys.executable, str(JOB), str(out), str(slow), str(sleep_us)], check=True, timeout=300)
    return commprof.analyze(commprof.load(out))


def test_the_sleeping_rank_is_the_root_cause(tmp_path: Path):
    rep = _job(tmp_path, 2, SLEEP_US)
    assert rep.critical is not None
    c = rep.critical.cause
    assert c.rank == 2, c.text
    assert c.what == "idle before collectives" and c.ranks == (2,)
    assert c.steps_on_path >= 5 and c.steps == 8  # beyond the other ranks' jitter in most steps
    assert (c.predicted_gain_ms or 0) > 2 * c.jitter_ms
    # 12 sleeps per step: at its peers' speed the step is shorter by about that much (a band: a shared CPU)
    assert 0.4 * 12 * SLEEP_US / 1e3 < (c.predicted_gain_ms or 0) < 1.5 * 12 * SLEEP_US / 1e3
    assert rep.findings[0].text.startswith(f"Rank 2 {'may hold' if weak(c) else 'holds'} the job back")


def test_without_the_sleep_no_single_rank(tmp_path: Path):
    rep = _job(tmp_path, -1, 0.0)
    assert rep.critical is not None
    c = rep.critical.cause
    assert c.rank is None and c.ranks == (), c.text
    assert c.text.startswith("No single rank holds the job back") and len(c.spread) >= 2
    assert rep.findings[0].text == c.text
