"""report.html in a real headless Chromium: every image loads, no console errors, nothing fetched from
the network.  Keeps a screenshot in tests/artifacts/ (look at it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLE, ROOT, real

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
ARTIFACTS = ROOT / "tests" / "artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def _render(trace_dir: Path, out: Path) -> Path:
    res = subprocess.run([sys.executable, "-m", "commprof", "report", str(trace_dir), "-o", str(out), "--format",
                          "html"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    return out / "report.html"


def _open(html: Path, shot: str) -> dict:
    problems: list[str] = []
    requests: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(html.as_uri(), wait_until="load")
        imgs = page.evaluate("""() => Array.from(document.images).map(i => ({id: i.id, ok: i.complete &&
                                i.naturalWidth > 0, w: i.naturalWidth, h: i.naturalHeight}))""")
        title = page.title()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
        browser.close()
    return {"problems": problems, "requests": requests, "images": imgs, "title": title}


def test_demo_report_renders_in_chromium(tmp_path: Path):
    d = tmp_path / "run"
    d.mkdir()
    for p in EXAMPLE.glob("rank*"):
        shutil.copy(p, d / p.name)
    html = _render(d, tmp_path / "out")
    got = _open(html, "report-demo.png")
    assert got["problems"] == []
    assert all(u.startswith(("file:", "data:")) for u in got["requests"]), got["requests"]
    ids = sorted(i["id"] for i in got["images"])
    assert ids == sorted(f"plot-{p.stem}" for p in (tmp_path / "out").glob("*.png"))
    assert len(ids) >= 4 and all(i["ok"] and i["w"] > 300 for i in got["images"])
    assert got["title"].startswith("commprof report")


def test_8_rank_real_report_renders_in_chromium(tmp_path: Path):
    html = _render(real("megatron_tp8_a100"), tmp_path / "out")
    got = _open(html, "report-megatron.png")
    assert got["problems"] == []
    assert {i["id"] for i in got["images"]} >= {"plot-breakdown", "plot-timeline", "plot-stragglers",
                                                 "plot-bandwidth"}
    assert all(i["ok"] for i in got["images"])


def test_hostile_names_are_escaped(tmp_path: Path):
    import gzip
    import json
    doc = json.loads(gzip.decompress((EXAMPLE / "rank0.pt.trace.json.gz").read_bytes()))
    for e in doc["traceEvents"]:
        if e.get("name") == "gloo:all_reduce":
            e["args"]["Input type"] = ["<script>document.title='pwned'</script>"]
    d = tmp_path / "run"
    d.mkdir()
    (d / "rank0.pt.trace.json.gz").write_bytes(gzip.compress(json.dumps(doc).encode()))
    html = _render(d, tmp_path / "out")
    text = html.read_text()
    assert "<script>document.title" not in text and "&lt;script&gt;" in text
    got = _open(html, "report-hostile.png")
    assert got["title"].startswith("commprof report") and got["problems"] == []


def test_dataparallel_report_renders_in_chromium(tmp_path: Path):
    """The 4-GPU DataParallel trace (tests/dp_trace.py): its section, the parallelism advice, and the tables
    render with no console error and nothing fetched."""
    import dp_trace

    d = tmp_path / "run"
    d.mkdir()
    dp_trace.write(d / "rank0.pt.trace.json")
    html = _render(d, tmp_path / "out")
    got = _open(html, "report-dataparallel.png")
    assert got["problems"] == [] and all(u.startswith(("file:", "data:")) for u in got["requests"])
    text = html.read_text()
    assert "nn.DataParallel (rank 0, devices 0, 1, 2, 3)" in text and "parallelism" in text
    assert all(i["ok"] for i in got["images"])
