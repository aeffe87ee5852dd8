"""Analyzer speed and memory against HTA and the I/O floor, each tool in its own process.

    python benchmarks/bench_analyzer.py [--quick]      # against HTA and the floor
    python benchmarks/bench_analyzer.py --growth       # 1, 2, 4, 8, 16 ranks
    python benchmarks/bench_analyzer.py --reduce       # the reduce step's memory as each rank's trace grows
    python benchmarks/bench_analyzer.py --against DIR  # also another commprof checkout (a baseline version)

Sets: 4 and 8 rank copies of HTA's largest real trace (df_index_resolver: 54 MB JSON, 216k events;
``distributedInfo.rank`` rewritten per copy) and the real 8-rank Megatron set.  For each set:
(a) ``python -m commprof report DIR --format json``, (b) HTA ``TraceAnalysis(trace_dir=DIR)`` +
``get_comm_comp_overlap()``, (c) the floor: gunzip of every file in one process, and gunzip + orjson.loads.
Wall time and peak RSS (of the largest process of the tree: ``wait4``'s ru_maxrss) per run; ratios are
against HTA and the floors measured in the same run.  With ``--against DIR`` the same report is also made by the
commprof in DIR (``git worktree add /tmp/base <commit>``), alternating with this one, ``--reps`` times each;
``this/base`` is the ratio of their median times.
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
REAL = ROOT / "tests" / "data" / "real"  # the real traces in the repository


def run(cmd: list[str], root: Path = ROOT) -> tuple[float, float]:
    """(seconds, peak RSS MB) of one command, with the commprof of ``root`` importable."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root)})
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
    big = REAL / "hta/tests/data/df_index_resolver/df_index_resolver.json.gz"
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


_COMM_WORDS = ("nccl", "record_param_comms", "c10d", "gloo", "ProfilerStep")
_DUP_CATS = {"kernel", "cpu_op", "cuda_runtime", "cuda_driver", "gpu_memcpy", "gpu_memset"}


def _inflate(src: Path, factor: int, n: int, dst: Path) -> None:
    """``n`` rank copies of the real trace with ``factor`` times its compute-side events (kernels, operators,
    runtime calls, copies; each extra copy with its own correlation ids) in the same steps, and the same
    steps and collectives: a trace that grows without adding anything that crosses ranks.  Written in torch's
    layout (one event per line)."""
    import orjson

    dst.mkdir(parents=True, exist_ok=True)
    doc = orjson.loads(gzip.decompress(src.read_bytes()))
    events = doc.pop("traceEvents")
    extra = []
    for e in events:
        name = str(e.get("name", ""))
        if e.get("ph") != "X" or e.get("cat") not in _DUP_CATS or any(w.lower() in name.lower() for w in _COMM_WORDS):
            continue
        for j in range(1, factor):
            e2 = dict(e)
            a = e2.get("args")
            if isinstance(a, dict):
                a = dict(a)
                for key in ("correlation", "External id"):
                    if isinstance(a.get(key), int):
                        a[key] += j * 10_000_000
                e2["args"] = a
            extra.append(e2)
    lines = [orjson.dumps(e) for e in events + extra]
    for r in range(n):
        info = dict(doc.get("distributedInfo") or {}, rank=r, world_size=n)
        head = {**doc, "distributedInfo": info}
        body = b"{\n" + b"".join(b'  "' + k.encode() + b'": ' + orjson.dumps(v) + b",\n" for k, v in head.items()
                                if k != "traceName")
        body += b'  "traceEvents": [\n  ' + b",\n  ".join(lines) + b'\n  ],\n  "traceName": "inflated"\n}\n'
        (dst / f"rank{r}.json.gz").write_bytes(gzip.compress(body, compresslevel=1))


_REDUCE_CODE = """
import pickle, resource, sys, time, commprof
from commprof.render.summary import summary
t0 = time.perf_counter()
run = commprof.load(sys.argv[1], spill=sys.argv[2] == "1")
rep = commprof.analyze(run)
summary(rep)
sec = time.perf_counter() - t0
handed = sum(len(pickle.dumps(rt)) for rt in run.ranks)
print(sec, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, handed / 1e6)
"""


def reduce_memory() -> int:
    """The reduce step's memory against the size of each rank's trace: 4 ranks, 1x, 4x, 8x the compute-side
    events of the real trace in the same steps, loaded with worker processes; peak RSS of the process that
    runs the reduce step (``RUSAGE_SELF``) and of the largest worker, with the lanes spilled (the default for
    large runs) and kept in memory (``spill=False``)."""
    from commprof.reader.decode import jsonio

    big = REAL / "hta/tests/data/df_index_resolver/df_index_resolver.json.gz"
    work = Path(tempfile.mkdtemp(prefix="commprof-bench-reduce-"))
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"{'compute ev.':>11} {'JSON MB/rank':>12} {'lanes':>8} {'seconds':>8} {'reduce RSS MB':>13} "
          f"{'worker RSS MB':>13} {'handed MB':>9}")
    for factor in (1, 4, 8):
        d = work / f"x{factor}"
        subprocess.run([sys.executable, __file__, "--inflate", str(big), str(factor), "4", str(d)], check=True)
        mb = jsonio.json_size(d / "rank0.json.gz") / 1e6
        for spill in ("1", "0"):
            out = subprocess.run([sys.executable, "-c", _REDUCE_CODE, str(d), spill], capture_output=True, text=True,
                                 check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
            sec, self_mb, child_mb, handed = (float(x) for x in out.stdout.split()[-4:])
            print(f"{'x' + str(factor):>11} {mb:>12.0f} {'spilled' if spill == '1' else 'memory':>8} {sec:>8.2f} "
                  f"{self_mb:>13.0f} {child_mb:>13.0f} {handed:>9.1f}")
        for f in d.iterdir():
            f.unlink()
    return 0


def against(sets: dict[str, Path], base: Path, reps: int) -> int:
    """This commprof and the one in ``base`` on the same sets, alternating; medians and their ratio."""
    import statistics

    print(f"{'set':<22} {'this s':>8} {'base s':>8} {'this/base':>9} {'this MB':>8} {'base MB':>8}")
    for name, d in sets.items():
        cmd = tools(d)["commprof"]
        got: dict[str, list[tuple[float, float]]] = {"this": [], "base": []}
        for _ in range(reps):
            got["this"].append(run(cmd))
            got["base"].append(run(cmd, base))
        t = {k: statistics.median(x[0] for x in v) for k, v in got.items()}
        m = {k: statistics.median(x[1] for x in v) for k, v in got.items()}
        print(f"{name:<22} {t['this']:>8.2f} {t['base']:>8.2f} {t['this'] / t['base']:>9.3f} {m['this']:>8.0f} "
              f"{m['base']:>8.0f}")
    return 0


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--make-copies":
        _make_copies(Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
        return 0
    if len(sys.argv) == 6 and sys.argv[1] == "--inflate":
        _inflate(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="only the 4-rank set")
    ap.add_argument("--growth", action="store_true", help="commprof alone on 1, 2, 4, 8, 16 rank copies")
    ap.add_argument("--reduce", action="store_true", help="the reduce step's memory as each rank's trace grows")
    ap.add_argument("--against", type=Path, help="another commprof checkout to compare with, in the same run")
    ap.add_argument("--reps", type=int, default=5, help="runs of each version with --against (default 5)")
    args = ap.parse_args()
    if args.growth:
        return growth()
    if args.reduce:
        return reduce_memory()
    big = REAL / "hta/tests/data/df_index_resolver/df_index_resolver.json.gz"
    work = Path(tempfile.mkdtemp(prefix="commprof-bench-sets-"))
    sets = {"df_index_resolver x4": copies(big, 4, work / "x4")}
    if not args.quick:
        sets["df_index_resolver x8"] = copies(big, 8, work / "x8")
        sets["megatron 8 ranks"] = REAL / "megatron_tp8_a100"
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    if args.against:
        return against(sets, args.against.resolve(), args.reps)
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
