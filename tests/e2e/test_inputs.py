"""Inputs that belong together (issue 24), made for real: gloo jobs traced with plain torch.profiler (no commprof
sidecar), a repeating schedule written by tensorboard_trace_handler, a Chrome trace of another program (Chromium's
own), and commprof.trace() used wrongly.  Each case: the exit code and the first line a user sees."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from commprof.__main__ import main
from conftest import ROOT, TORCH_ABORT

pytestmark = pytest.mark.slow

SHIFT_S = 70  # two runs "a minute apart": one real run's rank 1 moved 70 s later on the wall clock


def _job(out: Path, mode: str, *args: str, retry: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, str(ROOT / "tests" / "e2e" / "inputs_job.py"), str(out), mode, *args],
                         capture_output=True, text=True, env=env, timeout=300)
    if res.returncode and retry and TORCH_ABORT in res.stderr:  # torch's gloo abort (conftest.py): once more
        warnings.warn(f"a rank of the {mode} job aborted in torch ({TORCH_ABORT}); running it again once",
                      stacklevel=2)
        shutil.rmtree(out, ignore_errors=True)
        return _job(out, mode, *args, retry=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def _report(capsys, folder: Path, out: Path, *args: str) -> tuple[int, str, str]:
    """Exit code, the first line on stderr, and the first lines on stdout (the header) of ``commprof report``."""
    code = main(["report", str(folder), "-o", str(out), "--format", "text,json", "-q", *args])
    cap = capsys.readouterr()
    return code, (cap.err.strip().splitlines() or [""])[0], cap.out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two separate runs of a plain-profiler DDP job, a few seconds apart: ``a`` (width 128) and ``b`` (width 96:
    other bucket sizes), and one run with a repeating schedule (two cycles)."""
    base = tmp_path_factory.mktemp("inputs")
    out = {"a": base / "a", "b": base / "b", "cycles": base / "cycles"}
    _job(out["a"], "plain", "128")
    _job(out["b"], "plain", "96")
    _job(out["cycles"], "cycles")
    return out


def _rank_of(p: Path) -> int:
    return json.loads(p.read_text())["distributedInfo"]["rank"]


def _shifted(src: Path, dst: Path, seconds: int) -> None:
    doc = json.loads(src.read_text())
    doc["baseTimeNanoseconds"] += seconds * 10**9
    dst.write_text(json.dumps(doc))


def test_one_run_loads_and_aligns(runs, tmp_path, capsys):
    code, err, out = _report(capsys, runs["a"], tmp_path / "o")
    assert code == 0, err
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["notes"] == [] and not s["per_rank_only"] and s["stragglers"] is not None
    assert abs(s["clock_offsets_ms"]["1"]) < 1000  # one host: the alignment moves nothing by seconds


def test_ranks_of_runs_a_minute_apart_are_refused(runs, tmp_path, capsys):
    """Rank 0 of a run, rank 1 of the same job 70 s later (the gap made by moving its wall clock)."""
    d = tmp_path / "mixed"
    d.mkdir()
    shutil.copy(runs["a"] / "rank0.json", d / "rank0.json")
    _shifted(runs["a"] / "rank1.json", d / "rank1.json", SHIFT_S)
    code, err, _ = _report(capsys, d, tmp_path / "o")
    assert code == 2
    assert err.startswith(f"commprof: error: {d}: rank 1 (rank1.json) was recorded ")
    assert "s after rank 0 (rank0.json)" in err and "they did not run together" in err
    assert not (tmp_path / "o").exists()
    # asked for: per-rank figures only, no wait, straggler or advice across them
    code, err, head = _report(capsys, d, tmp_path / "p", "--per-rank")
    assert code == 0, err
    assert head.splitlines()[2].startswith("per-rank figures only, no cross-rank figure: rank 1 (rank1.json)")
    s = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert s["per_rank_only"] and s["stragglers"] == [] and s["advice"] == [] and s["clock_reference_rank"] is None
    assert all(r.get("wait_ms") in (None, 0) for r in s["ranks"])


def test_two_separate_runs_seconds_apart_are_refused(runs, tmp_path, capsys):
    """Rank 0 of run a, rank 1 of run b (another job, started seconds later): on one host, the clock says so;
    without the host's name (older torch, other hosts), the collectives do."""
    d = tmp_path / "mixed"
    d.mkdir()
    shutil.copy(runs["a"] / "rank0.json", d / "rank0.json")
    shutil.copy(runs["b"] / "rank1.json", d / "rank1.json")
    code, err, _ = _report(capsys, d, tmp_path / "o")
    assert code == 2
    assert err.startswith(f"commprof: error: {d}: ") and "did not run together" in err, err
    # no host name (older torch, other hosts), and the two clocks made to coincide (however long apart the jobs
    # ran on a loaded machine): the collectives still tell
    docs = [json.loads((d / name).read_text()) for name in ("rank0.json", "rank1.json")]
    start = [doc["baseTimeNanoseconds"] + 1000 * min(e["ts"] for e in doc["traceEvents"] if "ts" in e) for doc in docs]
    docs[1]["baseTimeNanoseconds"] += int(start[0] - start[1])
    for name, doc in zip(("rank0.json", "rank1.json"), docs, strict=True):
        doc.pop("host_name", None)
        (d / name).write_text(json.dumps(doc))
    code, err, _ = _report(capsys, d, tmp_path / "o2")
    assert code == 2
    assert err.startswith(f"commprof: error: {d}: rank 0 (rank0.json) and rank 1 (rank1.json) disagree on "), err
    assert "traces of different jobs" in err


def test_a_folder_of_cycles_gives_one_cycle(runs, tmp_path, capsys):
    files = sorted(runs["cycles"].glob("*.pt.trace.json"))
    assert len(files) == 4, files
    code, err, head = _report(capsys, runs["cycles"], tmp_path / "o")
    assert code == 0, err
    assert head.splitlines()[2].startswith("profiler cycle 2 of 2 (steps 6-7, the last complete one) analyzed; "
                                           "cycle 1 (steps 2-3) left out")
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["steps_analyzed"] == [6, 7] and s["ranks_loaded"] == [0, 1]
    code, err, head = _report(capsys, runs["cycles"], tmp_path / "o1", "--cycle", "1")
    assert code == 0, err
    assert head.splitlines()[2].startswith("profiler cycle 1 of 2 (steps 2-3, picked) analyzed")
    code, err, head = _report(capsys, runs["cycles"], tmp_path / "o2", "--steps", "2:4")
    assert code == 0 and "profiler cycle 1 of 2" in head
    # two cycles of one run compared
    code = main(["compare", f"{runs['cycles']}@1", f"{runs['cycles']}@2", "-o", str(tmp_path / "c"),
                 "--format", "json"])
    assert code == 0, capsys.readouterr().err
    d = json.loads((tmp_path / "c" / "compare.json").read_text())  # each side says which cycle it is
    assert (d["before"]["cycle"], d["after"]["cycle"]) == ("profiler cycle 1 of 2", "profiler cycle 2 of 2")


def test_cycles_crossed_are_refused(runs, tmp_path, capsys):
    """Rank 0's first cycle and rank 1's second: those steps never met."""
    by_rank: dict[int, list[Path]] = {}
    for p in sorted(runs["cycles"].glob("*.pt.trace.json"), key=lambda p: int(p.name.split(".")[1])):
        by_rank.setdefault(_rank_of(p), []).append(p)
    d = tmp_path / "crossed"
    d.mkdir()
    shutil.copy(by_rank[0][0], d / by_rank[0][0].name)
    shutil.copy(by_rank[1][1], d / by_rank[1][1].name)
    code, err, _ = _report(capsys, d, tmp_path / "o")
    assert code == 2
    assert err == (f"commprof: error: {d}: rank 0 ({by_rank[0][0].name}) has steps 2-3, rank 1 ({by_rank[1][1].name}) "
                   "steps 6-7: different profiler cycles or runs, never one window (--per-rank gives per-rank "
                   "figures only)")


def test_steps_outside_the_traces(runs, tmp_path, capsys):
    code, err, _ = _report(capsys, runs["a"], tmp_path / "o", "--steps", "10:20")
    assert code == 2
    assert err == f"commprof: error: {runs['a']}: the requested steps 10-19 select nothing: the traces hold steps 2-4"


def test_broken_and_missing_ranks_are_named_in_the_header(runs, tmp_path, capsys):
    d = tmp_path / "broken"
    d.mkdir()
    shutil.copy(runs["a"] / "rank0.json", d / "rank0.json")
    (d / "rank1.json").write_bytes((runs["a"] / "rank1.json").read_bytes()[:5000])
    code, err, head = _report(capsys, d, tmp_path / "o")
    assert code == 0, err
    lines = head.splitlines()
    assert lines[2].startswith("1 of 2 ranks (missing: 1)")
    skipped = "skipped, not read as traces: rank1.json (not valid JSON"
    assert any(line.startswith(skipped) for line in lines[2:6]), lines[:6]


def test_a_chrome_trace_of_another_program(tmp_path, capsys):
    """Chromium's own trace (a real Chrome trace, of a browser), as a document and as a bare event array."""
    pw = pytest.importorskip("playwright.sync_api")
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page()
        browser.start_tracing(page=page)
        page.set_content("<html><body><script>let x = 0; for (let i = 0; i < 1e5; i++) x += i;</script>"
                         "</body></html>")
        raw = browser.stop_tracing()
        browser.close()
    d = tmp_path / "chrome"
    d.mkdir()
    (d / "browser_trace.json").write_bytes(raw)
    code, err, _ = _report(capsys, d, tmp_path / "o")
    assert code == 2
    assert err.startswith(f"commprof: error: {d / 'browser_trace.json'}: a Chrome trace without PyTorch events "
                          "(no ProfilerStep, no cpu_op"), err
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "node_trace.json").write_text(json.dumps(json.loads(raw)["traceEvents"]))
    code, err, _ = _report(capsys, bare, tmp_path / "o2")
    assert code == 2
    assert err.startswith(f"commprof: error: {bare / 'node_trace.json'}: a Chrome trace without PyTorch events")


def _first_commprof_line(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if line.startswith("commprof"))


def test_no_step_recorded_is_named_at_exit(tmp_path):
    res = _job(tmp_path / "t", "no_step")
    line = _first_commprof_line(res.stderr)
    assert line.startswith("commprof (rank 0): no step was recorded: call prof.step() once per training step")
    side = json.loads((tmp_path / "t" / "rank0.commprof.json").read_text())
    assert any(w.startswith("no step was recorded") for w in side["warnings"])


def test_a_loop_shorter_than_the_schedule_is_named(tmp_path, capsys):
    res = _job(tmp_path / "t", "short_loop")
    line = _first_commprof_line(res.stderr)
    assert line.startswith("commprof (rank 0): the loop ran 3 step(s), fewer than the schedule's skip_first + wait + "
                           "warmup + active = 5: the trace holds 1 profiled step(s) (step 2)")
    code, err, head = _report(capsys, tmp_path / "t", tmp_path / "o")
    assert code == 0, err
    assert "· 1 step(s) analyzed: 2 ·" in head.splitlines()[1]
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert any("the loop ran 3 step(s)" in w for w in s["warnings"])
