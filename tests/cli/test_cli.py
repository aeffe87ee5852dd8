"""The CLI through ``python -m commprof``: outputs, exit codes, one-line errors."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLE, ROOT

DESIGN_KEYS = {"schema", "world_size", "backend", "ranks", "collectives", "buckets", "stragglers", "advice",
               "warnings"}
RANK_KEYS = {"rank", "steps", "step_ms", "compute_ms", "comm_ms", "overlapped_ms", "exposed_comm_ms",
             "overlap_pct", "comm_bytes_per_step"}
COLL_KEYS = {"op", "process_group", "group_size", "dtype", "count", "bytes", "time_ms", "algbw_gbps", "busbw_gbps"}
BUCKET_KEYS = {"index", "bytes", "params", "ready_ms", "comm_ms", "exposed_ms"}


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "commprof", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


@pytest.fixture()
def example(tmp_path: Path) -> Path:
    d = tmp_path / "example"
    d.mkdir()
    for p in EXAMPLE.glob("rank*"):
        shutil.copy(p, d / p.name)
    return d


def test_report_writes_summary_html_and_plots(example: Path):
    res = cli("report", str(example))
    assert res.returncode == 0, res.stderr
    out = example / "commprof-report"
    assert sorted(p.name for p in out.iterdir()) == ["bandwidth.png", "breakdown.png", "buckets.png", "merged.json",
                                                     "report.html", "stragglers.png", "summary.json", "timeline.png",
                                                     "whatif.png"]
    assert "href='merged.json'" in (out / "report.html").read_text()  # written by default, linked from the page
    s = json.loads((out / "summary.json").read_text())
    assert s.keys() >= DESIGN_KEYS and s["schema"] == "commprof.summary/1"
    assert s["world_size"] == 2 and s["backend"] == "gloo" and len(s["ranks"]) == 2
    assert all(r.keys() >= RANK_KEYS for r in s["ranks"])
    assert all(c.keys() >= COLL_KEYS for c in s["collectives"])
    assert s["buckets"] and all(b.keys() >= BUCKET_KEYS for b in s["buckets"])
    for r in s["ranks"]:
        m = r["mean"]  # medians do not add up; means do
        assert m["exposed_ms"] == pytest.approx(m["comm_ms"] - m["overlapped_ms"], abs=0.002)
        assert m["step_ms"] == pytest.approx(m["compute_ms"] + m["exposed_ms"] + m["other_ms"], abs=0.005)
        assert 0 <= r["overlap_pct"] <= 100
    # the text summary fits 100 columns, shows findings before tables and points to what it wrote
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert res.stdout.index("Findings") < res.stdout.index("Per rank")
    assert f"wrote {out}/" in res.stdout and "summary.json  breakdown.png" in res.stdout
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6 and "http://" not in html and "https://" not in html


def test_format_json_only_and_out_dir(example: Path, tmp_path: Path):
    out = tmp_path / "r"
    res = cli("report", str(example), "--format", "json", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert [p.name for p in out.iterdir()] == ["summary.json"]
    assert res.stdout == ""


def test_steps_restriction(example: Path, tmp_path: Path):
    res = cli("report", str(example), "--format", "json", "-o", str(tmp_path), "--steps", "3:5")
    assert res.returncode == 0, res.stderr
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["steps_analyzed"] == [3, 4] and all(r["steps"] == 2 for r in s["ranks"])


def test_drift_sets_the_band_of_the_traced_settings(example: Path, tmp_path: Path):
    """The traced settings measured in another run: their band spans the drift between runs (5% by default, as
    compare assumes); a platform that drifts less narrows it.  A drift outside [0, 100] is one line, exit 2."""
    def traced_row(*extra: str) -> tuple[dict, dict]:
        out = tmp_path / ("r" + "".join(extra))
        res = cli("report", str(example), "--format", "json", "-o", str(out), *extra)
        assert res.returncode == 0, res.stderr
        s = json.loads((out / "summary.json").read_text())
        return s["whatifs"][0], s["noise"]

    wide, nz = traced_row()
    narrow, nz1 = traced_row("--drift-pct", "1")
    assert nz["drift_sd_pct_assumed"] == 5.0 and nz1["drift_sd_pct_assumed"] == 1.0
    assert wide["predicted_step_ms"] == narrow["predicted_step_ms"]
    width = [r["predicted_range_ms"][1] - r["predicted_range_ms"][0] for r in (wide, narrow)]
    assert width[0] >= 2 * 0.14 * wide["predicted_step_ms"] and width[1] < width[0]
    _assert_one_line_error(cli("report", str(example), "--drift-pct", "150"), "--drift-pct 150")
    import commprof  # the library refuses it too (NaN included), rather than printing NaN bands
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="drift_pct"):
            commprof.analyze(commprof.load(example), drift_pct=bad)


def _assert_one_line_error(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("commprof: error: "), res.stderr
    assert "Traceback" not in res.stderr
    for n in needles:
        assert n in err[0]


def test_missing_path(tmp_path: Path):
    _assert_one_line_error(cli("report", str(tmp_path / "nope")), str(tmp_path / "nope"), "no such file")


def test_empty_folder(tmp_path: Path):
    _assert_one_line_error(cli("report", str(tmp_path)), "no trace files")


def test_truncated_gzip_names_the_file(tmp_path: Path):
    data = (EXAMPLE / "rank0.pt.trace.json.gz").read_bytes()
    (tmp_path / "rank0.pt.trace.json.gz").write_bytes(data[: len(data) // 2])
    _assert_one_line_error(cli("report", str(tmp_path)), "rank0.pt.trace.json.gz", "truncated")


def test_not_json(tmp_path: Path):
    (tmp_path / "rank0.json").write_text("this is not json {")
    _assert_one_line_error(cli("report", str(tmp_path)), "rank0.json", "not valid JSON")


def test_broken_rank_beside_healthy_ones_is_skipped_with_a_warning(example: Path):
    (example / "rank1.pt.trace.json.gz").write_bytes(gzip.compress(b'{"traceEvents": [')[:-8])
    res = cli("report", str(example), "--format", "json")
    assert res.returncode == 0, res.stderr
    s = json.loads((example / "commprof-report" / "summary.json").read_text())
    assert s["ranks_loaded"] == [0]
    assert any("skipped" in w and "rank1.pt.trace.json.gz" in w for w in s["warnings"])


def test_ranks_left_out_by_the_user_are_not_missing(example: Path):
    """--ranks 0,7 on a 2-rank run: rank 1 was left out, not lost (the header read "missing: 1"), and rank 7, not in
    the run, is a warning (it was dropped without a word)."""
    res = cli("report", str(example), "--ranks", "0,7", "--format", "json")
    assert res.returncode == 0, res.stderr
    s = json.loads((example / "commprof-report" / "summary.json").read_text())
    assert s["ranks_loaded"] == [0]
    assert "1 of 2 ranks (left out with --ranks: 1): cross-rank figures cover the ranks loaded only" in s["notes"]
    assert "--ranks asked for rank 7, not in this run (world size 2)" in s["warnings"]
    assert not any("missing" in line for line in s["notes"] + s["warnings"])


def test_unwritable_output_is_an_input_error(example: Path, tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _assert_one_line_error(cli("report", str(example), "-o", str(blocker / "out")), str(blocker / "out"))
    assert blocker.read_text() == "x"


def test_bad_steps_argument(example: Path):
    _assert_one_line_error(cli("report", str(example), "--steps", "x:y"), "--steps")


@pytest.mark.slow
def test_demo_trains_traces_and_reports(tmp_path: Path):
    res = cli("demo", "--out", str(tmp_path / "demo"), timeout=600)
    assert res.returncode == 0, res.stderr
    s = json.loads((tmp_path / "demo" / "commprof-report" / "summary.json").read_text())
    assert s["world_size"] == 2 and len(s["buckets"]) >= 5 and s["collectives"][0]["op"] == "all_reduce"
    assert (tmp_path / "demo" / "commprof-report" / "report.html").exists()
    assert "Per rank" in res.stdout
    # the noise of the run rests on the steps after the profiled ones (the first of them skipped: the export), not
    # on two steps (the default was 8 steps, whose two left a coin toss between "quiet" and "disturbed")
    assert s["noise"]["unprofiled_steps"] >= 5 and s["noise"]["profiled_steps"] == 3
