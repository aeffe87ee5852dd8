"""``commprof.monitor`` on real 3-rank gloo jobs (tests/e2e/monitor_job.py): hangs diagnosed from the dumps the
watchdog writes, a slow rank found over 240 steps, a killed rank, SIGUSR1, and the report of such a folder."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow
JOB = ROOT / "tests" / "e2e" / "monitor_job.py"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _job(out: Path, mode: str, steps: int, hang_s: float = 600, every: int = 100, wait_for_hangs: int = 0,
         timeout: float = 120) -> list[subprocess.Popen]:
    """Start the three ranks; with ``wait_for_hangs``, wait until that many hang dumps exist, then stop them all."""
    port = _port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(JOB), str(r), "3", str(port), str(out), mode, str(steps),
                               str(hang_s), str(every)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for r in range(3)]
    deadline = time.monotonic() + timeout
    if wait_for_hangs:
        while time.monotonic() < deadline and len(list(out.glob("rank*.hang.json"))) < wait_for_hangs:
            time.sleep(0.5)
        time.sleep(1.0)
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p in procs:
        p.wait(timeout=max(deadline - time.monotonic(), 5))
    return procs


def _report(folder: Path, tmp: Path) -> tuple[dict, str]:
    res = subprocess.run([sys.executable, "-m", "commprof", "report", str(folder), "-o", str(tmp / "rep")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads((tmp / "rep" / "summary.json").read_text()), res.stdout


def test_a_rank_that_stops_before_a_collective_is_named_with_where_it_was(tmp_path: Path):
    out = tmp_path / "m"
    _job(out, "stop", 20, hang_s=4, wait_for_hangs=3)
    s, text = _report(out, tmp_path)
    h = s["hang"]
    assert h["culprit_ranks"] == [2] and h["kind"] == "not reached"
    assert "rank 2 never reached it" in h["text"] and "monitor_job.py:" in h["text"]
    assert "time.sleep(3600)" in h["text"] and "ranks 0, 1 wait in all_reduce" in h["text"]
    assert text.index("HANG") < text.index("rank 0:")  # the verdict first
    # its dump records the environment it was started with (no rollup was written before the hang)
    assert ("Rank 2's environment differs from all 2 peers': NCCL_SOCKET_IFNAME=eth9 (theirs unset)"
            in " ".join(h["text"].split()))
    assert h["ranks"][2]["env"]["NCCL_SOCKET_IFNAME"] == "eth9" and "NCCL_SOCKET_IFNAME" not in h["ranks"][0]["env"]


def test_ranks_that_call_different_collectives_are_a_named_mismatch(tmp_path: Path):
    out = tmp_path / "m"
    _job(out, "barrier", 20, hang_s=4, wait_for_hangs=3)
    s, _ = _report(out, tmp_path)
    h = s["hang"]
    assert h["kind"] == "mismatch" and h["culprit_ranks"] == [2]
    assert "ranks 0, 1 called all_reduce([1] Float)" in h["text"] and "rank 2 called barrier()" in h["text"]
    assert "dist.barrier()" in h["text"]


def test_a_size_mismatch_names_the_odd_rank(tmp_path: Path):
    """Rank 2 all-reduces 10 elements where the others reduce 1.  On gloo a rank that receives more than it expects
    aborts in C++ (which one depends on the ring: its faulthandler stacks are kept), the others' all_reduce raises
    and the monitor dumps on the way out.  The calls at #17 differ; the aborted rank is counted with the ranks at
    its line of code: rank 2 is the odd one out."""
    out = tmp_path / "m"
    procs = _job(out, "size", 20, hang_s=30, timeout=90)
    aborted = [r for r, p in enumerate(procs) if p.returncode == -signal.SIGABRT]
    assert len(aborted) == 1, [p.returncode for p in procs]
    s, _ = _report(out, tmp_path)
    h = s["hang"]
    assert h["culprit_ranks"] == [2], h["text"]
    assert "dist.all_reduce(torch.ones(10))" in h["text"]
    if aborted != [2]:
        assert h["kind"] == "mismatch" and "called all_reduce([10] Float)" in h["text"]
        assert "then died: Aborted" in h["text"]
    else:
        assert "rank 2 died (Aborted)" in h["text"]
    dumped = [r for r in h["ranks"] if r["status"] == "dump"]
    assert len(dumped) == 2 and all(r["reason"].startswith("exception: RuntimeError") for r in dumped)


def test_a_killed_rank_is_named_and_the_others_files_are_complete(tmp_path: Path):
    out = tmp_path / "m"
    _job(out, "kill", 20, hang_s=4, every=2, wait_for_hangs=2)
    for r in (0, 2):
        for line in (out / f"rank{r}.monitor.jsonl").read_bytes().splitlines():
            assert json.loads(line)["rank"] == r  # every line complete
        assert json.loads((out / f"rank{r}.hang.json").read_text())["rank"] == r
    assert not (out / "rank1.hang.json").exists()
    s, _ = _report(out, tmp_path)
    h = s["hang"]
    assert h["culprit_ranks"] == [1] and "rank 1 left no dump and no crash record" in h["text"]
    assert "its monitor's last step was 3" in h["text"]


def test_a_rank_whose_loop_ended_early_is_told_from_a_killed_one(tmp_path: Path):
    """Rank 1 runs 5 steps where its peers run 20 (its data ran out) and leaves the monitored block normally: the
    others fail or wait in the first collective it never issued, step 5's; the report says it left its loop, not
    that it was killed, and names that collective (not a later one its peers' gloo failed too)."""
    out = tmp_path / "m"
    _job(out, "short", 20, hang_s=4, every=2, wait_for_hangs=2, timeout=90)
    assert not (out / "rank1.hang.json").exists()
    last = json.loads((out / "rank1.monitor.jsonl").read_bytes().splitlines()[-1])
    assert last["closed"] is True
    s, _ = _report(out, tmp_path)
    h = s["hang"]
    assert h["culprit_ranks"] == [1] and h["kind"] == "not reached", h
    assert "rank 1 left its monitored loop after step 4 without an exception" in h["text"], h["text"]
    assert "killed" not in h["text"]
    lines = [json.loads(x) for x in (out / "rank1.monitor.jsonl").read_bytes().splitlines()]
    issued = {i[1] for d in lines for c in d["collectives"] if c["pg"] == h["collective"]["process_group"]
              for i in c["issues"]}
    assert h["collective"]["seq"] == max(issued) + 1  # the first one rank 1 never issued


def test_a_slow_rank_is_found_as_a_step_range(tmp_path: Path):
    """Rank 1 sleeps 30 ms before its backward in steps 80-159 of 240: found, its range within 10 steps, no other
    rank named.  It was started with MALLOC_ARENA_MAX=2, its two peers without: the rollups record it and the
    slow range says so, as evidence to check."""
    out = tmp_path / "m"
    procs = _job(out, "slow", 240, every=20, timeout=300)
    assert all(p.returncode == 0 for p in procs)
    s, text = _report(out, tmp_path)
    st = s["monitor"]["stragglers"]
    assert [x["rank"] for x in st] == [1], st
    assert abs(st[0]["first_step"] - 80) <= 10 and abs(st[0]["last_step"] - 159) <= 10
    assert 20 <= st[0]["mean_late_ms"] <= 45
    assert s["hang"] is None and "Rank 1 was slow in " in text and " of steps " in text
    assert "Its environment differs from all 2 peers': MALLOC_ARENA_MAX=2 (theirs unset)" in " ".join(text.split())
    assert s["monitor"]["ranks"][1]["env"]["MALLOC_ARENA_MAX"] == "2"
    assert "MALLOC_ARENA_MAX" not in s["monitor"]["ranks"][0]["env"]
    assert (tmp_path / "rep" / "lateness.png").stat().st_size > 1000


def test_a_rank_late_at_a_period_is_one_range_with_it(tmp_path: Path):
    """Rank 1 pauses 250 ms every 20 steps (10, 30, ..., 230 of 240: a checkpoint's pause): each pause alone a single
    step under a stall's 1 s, so nothing was said of 3 s lost; now one range, "late every 20 steps", shaded at its
    steps in the plot."""
    out = tmp_path / "m"
    procs = _job(out, "periodic", 240, every=20, timeout=300)
    assert all(p.returncode == 0 for p in procs)
    s, text = _report(out, tmp_path)
    st = s["monitor"]["stragglers"]
    assert [(x["rank"], x["period_steps"], x["first_step"], x["last_step"]) for x in st] == [(1, 20, 10, 230)], st
    assert st[0]["slow_steps"] == 12 and 200 <= st[0]["mean_late_ms"] <= 400 and not st[0]["stall"]
    assert "Rank 1 was late every 20 steps, 12 times (steps 10, 30, 50, 70, 90, 110 …)" in " ".join(text.split())


def test_a_stall_that_resumed_is_a_stall_not_a_hang_and_is_slow(tmp_path: Path):
    """Rank 1 sleeps 8 s once (step 3 of 10) with hang_timeout_s=3: the watchdogs dump, the job goes on and ends.
    The report says rank 1 stalled there and the job resumed (no "never reached"), and counts rank 1 slow."""
    out = tmp_path / "m"
    procs = _job(out, "stall", 10, hang_s=3, every=5, timeout=120)
    assert all(p.returncode == 0 for p in procs)
    s, text = _report(out, tmp_path)
    h = s["hang"]
    assert h["kind"] == "stall" and h["culprit_ranks"] == [1], h
    assert "rank 1 stalled" in h["text"] and "at step 3" in h["text"] and "the job resumed" in h["text"]
    assert "time.sleep(8.0)" in h["text"] and "never reached" not in h["text"]
    took = float(h["text"].split("rank 1 stalled ")[1].split(" s")[0])
    assert 7.0 <= took <= 12.0, h["text"]
    assert "STALL" in text and "HANG" not in text
    st = s["monitor"]["stragglers"]
    assert {x["rank"] for x in st} == {1} and [x["first_step"] for x in st if x["stall"]] == [3], st
    assert "Rank 1 stalled at step 3" in text and "No rank was slow" not in text


def test_sigusr1_dumps_a_running_job_and_training_goes_on(tmp_path: Path):
    out = tmp_path / "m"
    port = _port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(JOB), str(r), "3", str(port), str(out), "ok", "400", "600", "50"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for r in range(3)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / "rank0.monitor.jsonl").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    procs[0].send_signal(signal.SIGUSR1)
    while time.monotonic() < deadline and not (out / "rank0.hang.json").exists():
        time.sleep(0.2)
    for p in procs:
        p.wait(timeout=120)
    assert [p.returncode for p in procs] == [0, 0, 0]
    dump = json.loads((out / "rank0.hang.json").read_text())
    assert dump["reason"] == "SIGUSR1" and any(t["main"] for t in dump["threads"])
    lines = (out / "rank0.monitor.jsonl").read_bytes().splitlines()
    assert len(lines) == 9 and sum(c["count"] for c in json.loads(lines[0])["collectives"]) >= 100
    assert json.loads(lines[-1])["closed"] is True and json.loads(lines[-1])["steps"] == []  # left normally


def test_training_computes_bitwise_the_same_under_the_monitor(tmp_path: Path):
    import torch

    from commprof.workloads.demo import launch

    cfg = dict(steps=8, width=128, layers=3, bucket_cap_mb=0.1, batch=16)
    plain, watched = tmp_path / "plain", tmp_path / "watched"
    plain.mkdir()
    watched.mkdir()
    launch(tmp_path / "t0", nproc=2, trace=False, result=str(plain), **cfg)
    launch(tmp_path / "t1", nproc=2, trace=False, monitor=True, monitor_every=3, result=str(watched), **cfg)
    for r in range(2):
        a, b = torch.load(plain / f"params{r}.pt"), torch.load(watched / f"params{r}.pt")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lines = (tmp_path / "t1" / "rank0.monitor.jsonl").read_bytes().splitlines()
    assert [json.loads(x)["last_step"] for x in lines] == [2, 5, 7]  # every 3 steps, the rest at the end
