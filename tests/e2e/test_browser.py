"""report.html in a real headless Chromium: every image loads, no console errors, nothing fetched from
the network.  Keeps a screenshot in tests/artifacts/ (look at it)."""

from __future__ import annotations

import re
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


@pytest.fixture(scope="module")
def example_html(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("timeline")
    d = tmp / "run"
    d.mkdir()
    for p in EXAMPLE.glob("rank*"):
        shutil.copy(p, d / p.name)
    return _render(d, tmp / "out")


def _page(p, html: Path, problems: list[str]):
    browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(html.as_uri(), wait_until="load")
    page.wait_for_selector('[data-commprof="timeline"][data-ready="1"]', state="attached", timeout=20000)
    return browser, page


def _view(tl) -> tuple[int, int]:
    return int(tl.get_attribute("data-view-start-ns")), int(tl.get_attribute("data-view-end-ns"))


def test_timeline_zooms_pans_shows_and_highlights(example_html: Path):
    """Wheel zooms around the cursor (the visible window shrinks, inside the old one), drag pans, hovering a
    collective shows what it is, clicking it outlines the same call on both ranks."""
    problems: list[str] = []
    with playwright.sync_playwright() as p:
        browser, page = _page(p, example_html, problems)
        tl = page.locator('[data-commprof="timeline"]')
        tl.scroll_into_view_if_needed()
        box = tl.bounding_box()
        s0, e0 = _view(tl)
        assert e0 > s0 >= 0
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 40)
        page.mouse.wheel(0, -400)
        s1, e1 = _view(tl)
        assert s0 <= s1 < e1 <= e0 and (e1 - s1) < 0.7 * (e0 - s0)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2 + 200, box["y"] + 40, steps=4)
        page.mouse.up()
        s2, e2 = _view(tl)
        assert s2 < s1 and abs((e2 - s2) - (e1 - s1)) <= 2_000  # panned back in time, same span
        page.dblclick('[data-commprof="timeline"] canvas')
        assert _view(tl) == (s0, e0)
        at = page.evaluate("() => document.querySelector('[data-commprof=\"timeline\"]').locate('cm', 0, 0)")
        assert at is not None
        canvas = page.locator('[data-commprof="timeline"] canvas').bounding_box()
        page.mouse.move(canvas["x"] + at["x"], canvas["y"] + at["y"])
        tip = page.locator('[data-commprof="tooltip"]')
        assert tip.is_visible()
        text = tip.inner_text()
        assert "all_reduce" in text and "rank 0" in text and "step" in text and "duration" in text, text
        assert "B" in text and "stream" in text, text
        page.mouse.click(canvas["x"] + at["x"], canvas["y"] + at["y"])
        assert int(tl.get_attribute("data-selected")) >= 0
        assert tl.get_attribute("data-selected-ranks") == "2"  # the same call, on both ranks
        page.screenshot(path=str(ARTIFACTS / "timeline-selected.png"))
        browser.close()
    assert problems == []


def test_tables_sort_and_filter(example_html: Path):
    problems: list[str] = []
    with playwright.sync_playwright() as p:
        browser, page = _page(p, example_html, problems)
        table = page.locator('table[data-commprof="table-ranks"]')
        assert table.locator("thead th").count() >= 5

        def column(i: int) -> list[str]:
            return [c.strip() for c in table.locator(f"tbody tr td:nth-child({i})").all_inner_texts()]

        assert column(1) == ["0", "1"]
        table.locator("thead th", has_text="rank").first.click()
        assert column(1) == ["0", "1"]
        table.locator("thead th", has_text="rank").first.click()
        assert column(1) == ["1", "0"]
        # each figure with its spread: "12.34 ±1.2%", the median and range in its tooltip, sorted by the figure
        step = table.locator("tbody tr td:nth-child(2)").first
        assert re.fullmatch(r"\d+\.\d\d ±\d+\.\d%", step.inner_text().strip()), step.inner_text()
        assert re.search(r"^mean [\d.]+ ms over \d+ steps.*; median [\d.]+, range [\d.]+-[\d.]+ over \d+ analyzed",
                         step.get_attribute("title") or ""), step.get_attribute("title")
        for i in range(2):  # ascending, then descending
            table.locator("thead th", has_text="exposed").first.click()
            sort = [float(v) for v in table.locator("tbody tr td:nth-child(6)").evaluate_all(
                "tds => tds.map(t => t.dataset.sort)")]
            shown = [float(t.split()[0]) for t in column(6)]
            assert sort == sorted(sort, reverse=i == 1) and shown == [round(v, 2) for v in sort]
        colls = page.locator('table[data-commprof="table-collectives"]')
        colls.locator("thead th", has_text="sum ms").first.click()
        times = [float(t) for t in colls.locator("tbody tr td:nth-child(8)").all_inner_texts()]
        assert times == sorted(times)
        browser.close()
    assert problems == []


def test_many_ranks_overview_zooms_into_a_group(tmp_path: Path):
    """256 synthetic ranks: the timeline opens as an overview of every rank; a click zooms into a group of ranks
    drawn in detail; the PNG plots, aggregated past PLOT_RANKS_MAX ranks, keep one readable size."""
    import synthetic

    from commprof import analyze
    from commprof.render import html

    page_path = tmp_path / "report.html"
    page_path.write_text(html.render(analyze(synthetic.big_run(256, steps=2, kernels=60))))
    problems: list[str] = []
    with playwright.sync_playwright() as p:
        browser, page = _page(p, page_path, problems)
        tl = page.locator('[data-commprof="timeline"]')
        assert tl.get_attribute("data-mode") == "overview" and tl.get_attribute("data-view-ranks") == "0-255"
        imgs = page.evaluate("() => Array.from(document.images).map(i => [i.id, i.naturalWidth, i.naturalHeight])")
        assert {i[0] for i in imgs} >= {"plot-breakdown", "plot-stragglers", "plot-timeline"}
        # one bar / row per rank drew 256 ranks 10,000 px tall; the timeline draws 16 of them
        assert all(0 < h <= 1800 and 0 < w <= 1400 for _id, w, h in imgs), imgs
        grid = page.locator('[data-commprof="stepgrid"]')  # per-step variation: rows of 2 ranks, at most 128
        assert (grid.get_attribute("data-rows"), grid.get_attribute("data-ranks-per-row")) == ("128", "2")
        tl.scroll_into_view_if_needed()
        box = tl.bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        assert tl.get_attribute("data-mode") == "detail"
        lo, hi = map(int, tl.get_attribute("data-view-ranks").split("-"))
        assert 0 < hi - lo < 30 and lo <= 128 <= hi + 30
        page.screenshot(path=str(ARTIFACTS / "timeline-256-detail.png"))
        browser.close()
    assert problems == []
