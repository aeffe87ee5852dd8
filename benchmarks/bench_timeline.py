"""report.html at scale: a synthetic 1,024-rank data-parallel run (tests/synthetic.py), its report.html's size and
how long its interactive timeline takes to be ready in headless Chromium; the example run's page beside it.

    python benchmarks/bench_timeline.py [--ranks 1024] [--keep DIR]

Targets (issue 26): report.html of the example run <= 3 MB; of 1,024 ranks <= 16 MB, its timeline ready (drawn,
``data-ready``) within 5 s of navigation.  Ready time is printed against the example page's, measured in the
same run (the ratio tells the cost of scale on this machine).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def ready_s(page_path: Path, reps: int = 3) -> float:
    """Median seconds from navigation to the timeline's data-ready attribute."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True)
        for _ in range(reps):
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            t = time.perf_counter()
            page.goto(page_path.as_uri(), wait_until="commit")
            page.wait_for_selector('[data-commprof="timeline"][data-ready="1"]', state="attached", timeout=120_000)
            times.append(time.perf_counter() - t)
            page.close()
        browser.close()
    return sorted(times)[len(times) // 2]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, default=1024)
    ap.add_argument("--keep", help="folder to keep the pages in")
    args = ap.parse_args()
    import synthetic

    from commprof import analyze
    from commprof.render import html
    from commprof.render.plot import plots

    out = Path(args.keep or tempfile.mkdtemp(prefix="commprof-bench-timeline-"))
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "commprof", "report", str(ROOT / "traces" / "example"), "-o",
                    str(out / "example"), "--format", "html", "-q"], check=True, cwd=ROOT)
    small = out / "example" / "report.html"
    t = time.perf_counter()
    rep = analyze(synthetic.big_run(args.ranks))
    t_an = time.perf_counter() - t
    t = time.perf_counter()
    page = html.render(rep, plots.all_plots(rep))
    t_render = time.perf_counter() - t
    big = out / f"report-{args.ranks}.html"
    big.write_text(page)
    r_small, r_big = ready_s(small), ready_s(big)
    mb_small, mb_big = small.stat().st_size / 1e6, big.stat().st_size / 1e6
    print(f"example run: report.html {mb_small:.2f} MB (target <= 3), timeline ready {r_small:.2f} s")
    print(f"{args.ranks} ranks: report.html {mb_big:.2f} MB (target <= 16), timeline ready {r_big:.2f} s "
          f"(target <= 5; {r_big / r_small:.1f}x the example's); analysis {t_an:.1f} s, page {t_render:.1f} s")
    print(f"pages in {out}")
    ok = mb_small <= 3 and mb_big <= 16 and r_big <= 5
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
