"""``commprof compare`` on two live gloo runs that differ in bucket cap, and its HTML in headless Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import commprof
from conftest import ROOT

pytestmark = pytest.mark.slow


def test_two_live_runs_with_different_bucket_caps(gloo_run: Path, tmp_path: Path):
    """BEFORE: the shared gloo run (bucket_cap_mb=0.25); AFTER: the same job at BEFORE's advised cap (1 MB when
    nothing was advised).  The cap change is found in the sidecars; the advice check, where there is one, compares
    the prediction with AFTER's median step outside the profiler."""
    from commprof.workloads.demo import launch

    rep = commprof.analyze(commprof.load(gloo_run))
    adv = next((a for a in rep.advice if a.knob == "bucket_cap_mb"), None)
    cap = float(adv.value) if adv is not None else 1.0
    after = tmp_path / "after"
    launch(after, nproc=2, steps=7, width=256, layers=4, bucket_cap_mb=cap, batch=32)
    out = tmp_path / "cmp"
    res = subprocess.run([sys.executable, "-m", "commprof", "compare", str(gloo_run), str(after), "-o", str(out)],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr
    d = json.loads((out / "compare.json").read_text())
    changed = {s["name"]: (s["before"], s["after"]) for s in d["settings_changed"]}
    assert changed["bucket_cap_mb"] == (0.25, cap)
    assert d["before"]["untraced_step_ms"] and d["after"]["untraced_step_ms"]
    checks = [c for c in d["advice_check"] if c["knob"] == "bucket_cap_mb"]
    if adv is not None:
        assert checks and checks[0]["applied"] is True
        assert checks[0]["measured_step_ms"] == d["after"]["untraced_step_ms"]
        assert checks[0]["error_pct"] == pytest.approx(
            100 * (checks[0]["predicted_step_ms"] - checks[0]["measured_step_ms"]) / checks[0]["measured_step_ms"],
            abs=0.1)
    assert all(c["applied"] is not True for c in d["advice_check"] if c["knob"] not in ("bucket_cap_mb",))
    # AFTER's buckets are fewer and larger
    assert len([b for b in d["buckets"] if b["after"]]) < len([b for b in d["buckets"] if b["before"]])


def test_compare_html_renders_in_chromium(tmp_path: Path):
    from test_browser import CHROMIUM, _open

    from conftest import real

    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed")
    root = real("netns_500mbit_amd_epyc")
    res = subprocess.run([sys.executable, "-m", "commprof", "compare", str(root / "traced_default_bucket25"),
                          str(root / "traced_fp16_bucket4"), "-o", str(tmp_path), "--format", "html"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr
    got = _open(tmp_path / "compare.html", "compare-amd.png")
    assert got["problems"] == []
    assert all(u.startswith(("file:", "data:")) for u in got["requests"]), got["requests"]
    assert {i["id"] for i in got["images"]} == {"plot-compare_breakdown", "plot-compare_collectives"}
    assert all(i["ok"] and i["w"] > 300 for i in got["images"])
    assert got["title"] == "commprof compare"
