"""The whole report at many ranks: text, summary.json, report.html with its PNG plots and the merged Perfetto
trace (``python -m commprof report DIR``, every default format) of N synthetic ranks, against the code before.

    python benchmarks/bench_report_scale.py [--ranks 8,64,256,1024] [--against REV] [--keep DIR]

The ranks are bench_critpath.py's (torch's NCCL Kineto layout, tensor-parallel groups of 8, data-parallel
all-reduces over all ranks, one slow rank).  For each N: wall time and peak RSS of the report in its own process
(wait4), the size of report.html and of the PNGs; with ``--against REV`` (a git revision of this repository,
``git archive``d into a temporary folder) the same report by the code of REV, and the ratio.  Target (issue 26):
the report of 1,024 ranks in well under half the time of the code that drew one bar or row per rank
(``render/plot/scale.py``: past ``PLOT_RANKS_MAX`` ranks the per-rank plots aggregate).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_critpath import simulate  # noqa: E402


def checkout(rev: str) -> Path:
    """The repository's files at ``rev``, in a temporary folder."""
    dest = Path(tempfile.mkdtemp(prefix="commprof-before-"))
    tar = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    return dest


def measure(root: Path, d: Path, out: Path) -> tuple[float, float, Path]:
    """Seconds and peak RSS (MB) of the report of ``d`` by the code in ``root`` into ``out``, and ``out``."""
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "commprof", "report", str(d), "-o", str(out), "-q"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root), "MPLBACKEND": "Agg"})
    _pid, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(p.stderr.read().decode()[-2000:] if p.stderr else "failed")
    return dt, ru.ru_maxrss / 1024, out


def sizes(out: Path) -> tuple[float, float]:
    """report.html's MB and the PNGs' MB."""
    html = out / "report.html"
    return (html.stat().st_size / 1e6 if html.exists() else 0.0,
            sum(p.stat().st_size for p in out.glob("*.png")) / 1e6)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", default="8,64,256,1024")
    ap.add_argument("--against", default=None, help="a git revision to compare with (e.g. main)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the traces and outputs under this folder")
    args = ap.parse_args()
    before = checkout(args.against) if args.against else None
    print(f"{'ranks':>6} {'seconds':>8} {'peak MB':>8} {'html MB':>8} {'png MB':>7} {'before s':>9} {'before MB':>10}"
          f" {'b. png MB':>10} {'time x':>7}")
    for n in [int(x) for x in args.ranks.split(",")]:
        top = args.keep or Path(tempfile.mkdtemp(prefix="commprof-scale-trace-"))
        d = top / f"n{n}"
        d.mkdir(parents=True, exist_ok=True)
        simulate(n, d)
        sec, mb, out = measure(ROOT, d, top / f"report-n{n}")
        html_mb, png_mb = sizes(out)
        b = f"{'':>9} {'':>10} {'':>10} {'':>7}"
        if before is not None:
            bsec, bmb, bout = measure(before, d, top / f"report-before-n{n}")
            b = f"{bsec:>9.1f} {bmb:>10.0f} {sizes(bout)[1]:>10.2f} {sec / bsec:>7.2f}"
        print(f"{n:>6} {sec:>8.1f} {mb:>8.0f} {html_mb:>8.2f} {png_mb:>7.2f} {b}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
