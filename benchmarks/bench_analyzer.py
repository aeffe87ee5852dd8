"""Analyzer speed and memory against HTA and the I/O floor, each tool in its own process.

    python benchmarks/bench_analyzer.py [--quick]

Sets: 4 and 8 rank copies of HTA's largest real trace (df_index_resolver: 54 MB JSON, 216k events;
``distributedInfo.rank`` rewritten per copy) and the real 8-rank Megatron set.  For each set:
(a) ``python -m commprof report DIR --format json``, (b) HTA ``TraceAnalysis(trace_dir=DIR)`` +
``get_comm_comp_overlap()``, (c) the floor: gunzip of every file in one process, and gunzip + orjson.loads.
Wall time and peak RSS (of the largest process of the tree: ``wait4``'s ru_maxrss) per run; ratios are
against HTA and the floors measured in the same run.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COMMPROF_SHARED_TRACES", ROOT.parent / "shared" / "traces"))


def run(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS MB) of one command."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    _pid, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"{cmd[:4]} failed: {p.stderr.read().decode()[-2000:] if p.stderr else ''}")
    return dt, ru.ru_maxrss / 1024


def copies(src: Path, n: int, dst: Path) -> Path:
    """Made in a child process: a forked measurement would otherwise start with this process's memory."""
    subprocess.run([sys.executable, __file__, "--make-copies", str(src), str(n), str(dst)], check=True)
    return dst


def _make_copies(src: Path, n: int, dst: Path) -> None:
    """Byte-for-byte copies of the real trace (torch's layout kept) with distributedInfo's rank and world size
    rewritten in place."""
    dst.mkdir(parents=True, exist_ok=True)
    raw = gzip.decompress(src.read_bytes())
    m = re.search(rb'"distributedInfo": \{[^}]*\}', raw)
    if m is None:
        raise SystemExit(f"{src}: no distributedInfo")
    for r in range(n):
        info = re.sub(rb'"world_size": \d+', b'"world_size": %d' % n,
                      re.sub(rb'"rank": \d+', b'"rank": %d' % r, m.group(0)))
        out = raw[:m.start()] + info + raw[m.end():]
        (dst / f"rank{r}.json.gz").write_bytes(gzip.compress(out, compresslevel=1))


def tools(d: Path) -> dict[str, list[str]]:
    files = sorted(str(p) for p in d.glob("*.json.gz"))
    py = sys.executable
    out = tempfile.mkdtemp(prefix="commprof-bench-")
    return {
        "commprof": [py, "-m", "commprof", "report", str(d), "--format", "json", "-o", out, "-q"],
        "HTA": [py, "-c", "import logging; logging.disable(logging.WARNING)\n"
                          "from hta.trace_analysis import TraceAnalysis\n"
                          f"TraceAnalysis(trace_dir={str(d)!r}).get_comm_comp_overlap(visualize=False)"],
        "gunzip": [py, "-c", f"import gzip\nfor p in {files!r}: gzip.open(p).read()"],
        "gunzip+orjson": [py, "-c", f"import gzip, orjson\nfor p in {files!r}: orjson.loads(gzip.open(p).read())"],
    }


def results_mb(d: Path) -> float:
    """MB of the per-rank results the cross-rank (reduce) step receives: the pickled ``RankTrace`` of every rank,
    as worker processes send them (measured in a child process)."""
    code = ("import pickle, commprof\n"
            f"print(sum(len(pickle.dumps(r)) for r in commprof.load({str(d)!r}).ranks))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    return int(out.stdout.split()[-1]) / 1e6


def growth() -> int:
    """Time, peak RSS and the size of the per-rank results against the number of ranks (copies of the same real
    trace)."""
    big = SHARED / "hta/tests/data/df_index_resolver/df_index_resolver.json.gz"
    work = Path(tempfile.mkdtemp(prefix="commprof-bench-growth-"))
    src = copies(big, 16, work / "all")
    files = sorted(src.glob("*.json.gz"), key=lambda p: int(p.name[4:].split(".")[0]))
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"{'ranks':>5} {'events':>10} {'seconds':>8} {'s per rank':>10} {'peak MB':>8} {'k events/s':>10} "
          f"{'results MB':>10}")
    base = None
    for n in (1, 2, 4, 8, 16):
        d = work / f"n{n}"
        d.mkdir()
        for f in files[:n]:
            (d / f.name).symlink_to(f)
        out = tempfile.mkdtemp(prefix="commprof-bench-")
        sec, mb = run([sys.executable, "-m", "commprof", "report", str(d), "--format", "json", "-o", out, "-q"])
        events = 216_092 * n
        base = base or sec
        print(f"{n:>5} {events:>10,} {sec:>8.2f} {sec / n:>10.2f} {mb:>8.0f} {events / sec / 1e3:>10.0f} "
              f"{results_mb(d):>10.1f}")
    return 0


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--make-copies":
        _make_copies(Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="only the 4-rank set")
    ap.add_argument("--growth", action="store_true", help="commprof alone on 1, 2, 4, 8, 16 rank copies")
    args = ap.parse_args()
    if args.growth:
        return growth()
    big = SHARED / "hta/tests/data/df_index_resolver/df_index_resolver.json.gz"
    work = Path(tempfile.mkdtemp(prefix="commprof-bench-sets-"))
    sets = {"df_index_resolver x4": copies(big, 4, work / "x4")}
    if not args.quick:
        sets["df_index_resolver x8"] = copies(big, 8, work / "x8")
        sets["megatron 8 ranks"] = SHARED / "megatron_tp8_a100"
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"{'set':<22} {'tool':<14} {'seconds':>8} {'peak MB':>8} {'HTA/x':>7} {'RSS/HTA':>8} {'x/gunzip':>9} "
          f"{'x/gz+json':>9}")
    for name, d in sets.items():
        res = {tool: run(cmd) for tool, cmd in tools(d).items()}
        for tool, (sec, mb) in res.items():
            print(f"{name:<22} {tool:<14} {sec:>8.2f} {mb:>8.0f} {res['HTA'][0] / sec:>7.2f} "
                  f"{mb / res['HTA'][1]:>8.2f} {sec / res['gunzip'][0]:>9.2f} {sec / res['gunzip+orjson'][0]:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
