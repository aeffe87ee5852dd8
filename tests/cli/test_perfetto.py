"""The merged Perfetto / chrome://tracing trace: a schema check (the perfetto package's trace processor
downloads its binary at run time, which this machine cannot)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

from conftest import EXAMPLE, ROOT, real


def _merged(trace_dir, out):
    res = subprocess.run([sys.executable, "-m", "commprof", "report", str(trace_dir), "-o", str(out), "--format",
                          "perfetto"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads((out / "merged.json").read_text())


def _check_schema(doc, n_ranks):
    assert set(doc) >= {"traceEvents", "displayTimeUnit"}
    names: dict[int, str] = {}
    per_thread = defaultdict(list)
    for e in doc["traceEvents"]:
        assert e["ph"] in ("X", "M")
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        if e["ph"] == "M":
            assert e["name"] in ("process_name", "process_sort_index", "thread_name", "thread_sort_index")
            if e["name"] == "process_name":
                names[e["pid"]] = e["args"]["name"]
            continue
        assert isinstance(e["name"], str) and isinstance(e["ts"], float | int) and isinstance(e["dur"], float | int)
        assert e["ts"] >= 0 and e["dur"] >= 0
        per_thread[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    assert len(names) == n_ranks
    # slices on one thread nest or follow each other: never a partial overlap
    for spans in per_thread.values():
        spans.sort()
        for (_a0, a1), (b0, b1) in zip(spans, spans[1:], strict=False):
            assert b0 >= a1 - 1e-3 or b1 <= a1 + 1e-3
    return names


def test_merged_trace_of_the_demo(tmp_path):
    doc = _merged(EXAMPLE, tmp_path)
    _check_schema(doc, 2)
    cats = {e.get("cat") for e in doc["traceEvents"] if e["ph"] == "X"}
    assert {"steps", "compute", "comm", "exposed comm", "DDP buckets", "wait for late ranks"} <= cats


def test_merged_trace_aligns_clocks_of_8_ranks(tmp_path):
    doc = _merged(real("megatron_tp8_a100"), tmp_path)
    names = _check_schema(doc, 8)
    assert all(names[r].startswith(f"rank {r} ") for r in range(8))
    # the same all-reduce ends at the same aligned time on every rank
    ends = defaultdict(list)
    for e in doc["traceEvents"]:
        if e["ph"] == "X" and e.get("cat") == "comm":
            ends[e["pid"]].append(e["ts"] + e["dur"])
    firsts = [sorted(v)[10] for v in ends.values()]
    assert max(firsts) - min(firsts) < 100  # µs


def test_merged_trace_past_the_size_limit_is_left_out_with_one_line(tmp_path):
    """--perfetto-max-mb: past it merged.json is not written, one line says so, report.html does not link it."""
    res = subprocess.run([sys.executable, "-m", "commprof", "report", str(EXAMPLE), "-o", str(tmp_path), "-q",
                          "--format", "json,html,perfetto", "--perfetto-max-mb", "0.01"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "merged.json").exists()
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "merged.json not written" in lines[0] and "--perfetto-max-mb" in lines[0]
    assert "href='merged.json'" not in (tmp_path / "report.html").read_text()
