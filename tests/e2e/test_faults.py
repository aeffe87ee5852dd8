"""Faults during training, with real gloo processes: a failing comm hook, a dying rank, a full disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import commprof
from conftest import ROOT

pytestmark = pytest.mark.slow


def _run(script: str, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "tests" / "e2e" / script), *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_users_comm_hook_error_reaches_the_user_unchanged(tmp_path: Path):
    plain = _run("fault_job.py", str(tmp_path / "a"), "hook_raises_plain")
    traced = _run("fault_job.py", str(tmp_path / "b"), "hook_raises")
    assert plain.returncode == traced.returncode == 3, (plain.stderr[-2000:], traced.stderr[-2000:])
    seen_plain = next(line for line in plain.stdout.splitlines() if line.startswith("USER SAW"))
    seen_traced = next(line for line in traced.stdout.splitlines() if line.startswith("USER SAW"))
    assert "the user's hook failed" in seen_plain
    assert seen_traced == seen_plain


def test_a_dead_rank_does_not_hang_the_survivor_and_the_report_names_it(tmp_path: Path):
    out = tmp_path / "t"
    t0 = time.monotonic()
    res = _run("fault_job.py", str(out), "rank_dies", timeout=180)
    took = time.monotonic() - t0
    assert res.returncode == 0, res.stderr[-3000:]
    codes = json.loads(res.stdout.split("EXIT CODES ")[1].splitlines()[0])
    assert codes[1] == 17  # the rank that died
    assert codes[0] is not None  # the survivor ended (its collective failed); it did not hang
    assert took < 170
    # the survivor's files are complete; the report says which rank is missing
    assert (out / "rank0.pt.trace.json.gz").exists() and (out / "rank0.commprof.json").exists()
    assert not (out / "rank1.pt.trace.json.gz").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    run = commprof.load(out)
    assert [rt.rank for rt in run.ranks] == [0]
    rep = commprof.analyze(run)
    assert rep.overlaps[0].steps  # what rank 0 recorded before rank 1 died is reported


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_full_disk_costs_a_warning_not_the_training(tmp_path: Path):
    disk = tmp_path / "small"
    if not _tmpfs(disk, "48k"):
        pytest.skip("cannot mount a small tmpfs here")
    try:
        res = _run("single_rank_job.py", str(disk / "traces"), "ok")
        assert res.returncode == 0, res.stderr[-3000:]
        assert "training finished" in res.stdout
        assert res.stderr.count("could not write the trace") == 1  # warned once
        assert not [p for p in (disk / "traces").iterdir() if p.name.startswith(".commprof-")]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
