"""One huge trace: a generated ~1 GB (uncompressed) single-rank Kineto trace, analyzed in bounded memory.

    python benchmarks/bench_huge.py [--gb 1.0] [--keep DIR]

The trace is HTA's largest real trace (df_index_resolver: 216k events of a real GPU job: CPU operators, CUDA
runtime calls, kernels, memcpys, flow events, memory events) repeated end to end until it reaches the size,
each copy shifted in time, its steps renumbered and its correlation ids made unique, and written in the layout
torch.profiler writes (one event per line).  Then ``python -m commprof report FILE --format json`` runs in its
own process: wall time, peak RSS (wait4), MB/s of JSON; and the size of the parsed rank as a worker process
hands it to the cross-rank step (pickled).  Targets (issue 6): peak RSS <= 2 GB, >= 100 MB/s of
JSON per core (the report of one file uses one core).
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "tests" / "data" / "real"  # the real traces in the repository
SRC = REAL / "hta/tests/data/df_index_resolver/df_index_resolver.json.gz"


def generate(out: Path, target_bytes: int) -> tuple[int, int]:
    """Write the trace; returns (bytes, events)."""
    doc = orjson.loads(gzip.decompress(SRC.read_bytes()))
    events = doc.pop("traceEvents")
    lo = min(e["ts"] for e in events if isinstance(e.get("ts"), (int, float)))
    hi = max(e["ts"] + e.get("dur", 0) for e in events if isinstance(e.get("ts"), (int, float)))
    span = (hi - lo) + 1000
    head = {k: v for k, v in doc.items() if k not in ("traceName",)}
    n = 0
    with out.open("wb") as f:
        f.write(b"{\n")
        for k, v in head.items():
            f.write(b'  "' + k.encode() + b'": ' + orjson.dumps(v) + b",\n")
        f.write(b'  "traceEvents": [\n')
        copy = 0
        first = True
        while f.tell() < target_bytes:
            for e in events:
                e2 = dict(e)
                if isinstance(e2.get("ts"), (int, float)):
                    e2["ts"] = e2["ts"] + copy * span
                name = e2.get("name")
                if isinstance(name, str) and name.startswith("ProfilerStep#"):
                    e2["name"] = f"ProfilerStep#{int(name[13:]) + 1000 * copy}"
                a = e2.get("args")
                if isinstance(a, dict) and ("correlation" in a or "External id" in a):
                    a = dict(a)
                    for key in ("correlation", "External id"):
                        if isinstance(a.get(key), int):
                            a[key] += copy * 10_000_000
                    e2["args"] = a
                if isinstance(e2.get("id"), int):
                    e2["id"] += copy * 10_000_000
                f.write((b"  " if first else b",\n  ") + orjson.dumps(e2))
                first = False
                n += 1
            copy += 1
        f.write(b'\n  ],\n  "traceName": "generated"\n}\n')
        size = f.tell()
    return size, n


def measure(path: Path) -> tuple[float, float]:
    out = tempfile.mkdtemp(prefix="commprof-huge-")
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "commprof", "report", str(path), "--format", "json", "-o", out, "-q"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    _pid, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(p.stderr.read().decode()[-2000:] if p.stderr else "failed")
    return dt, ru.ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--keep", type=Path, default=None, help="folder for the generated trace (default: a temp dir)")
    args = ap.parse_args()
    d = args.keep or Path(tempfile.mkdtemp(prefix="commprof-huge-trace-"))
    d.mkdir(parents=True, exist_ok=True)
    path = d / "rank0.pt.trace.json"
    t0 = time.perf_counter()
    size, n = generate(path, int(args.gb * 1e9))
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"generated {path}: {size / 1e6:,.0f} MB, {n:,} events in {time.perf_counter() - t0:.0f} s")
    sec, mb = measure(path)
    code = f"import pickle, commprof\nprint(len(pickle.dumps(commprof.load({str(path)!r}).ranks[0])))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    result_mb = int(res.stdout.split()[-1]) / 1e6
    print(f"{'trace':<26} {'seconds':>8} {'peak RSS MB':>12} {'MB/s of JSON':>13} {'RSS / 2 GB':>11} "
          f"{'result MB':>10}")
    print(f"{'1 rank, ' + f'{size / 1e9:.2f} GB JSON':<26} {sec:>8.1f} {mb:>12.0f} {size / 1e6 / sec:>13.0f} "
          f"{mb / 2048:>11.2f} {result_mb:>10.1f}")
    if not args.keep:
        path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
