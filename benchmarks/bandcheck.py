"""How often the measured step falls inside its predicted band (``predicted_range_ms``), quiet and disturbed.

``busy()`` runs a CPU-bound process (``while True: pass``) pinned to core 0 beside the traced run only (the
measurements stay quiet): the disturbed condition of a shared node.  ``summary()`` prints, per knob and
condition, how many measured steps fell inside their band, the bands' mean half-width, and the measurements that
were themselves disturbed (their steps varying by more than 10%), which cannot test a band."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class Row:
    """One setting of one repetition: its prediction, band and measured step (what ``summary`` counts)."""

    setting: str
    predicted_ms: float
    band_ms: tuple[float, float] | None
    measured_ms: float
    spread_pct: float | None


@contextmanager
def busy(on: bool) -> Iterator[None]:
    if not on:
        yield
        return
    pin = (lambda: os.sched_setaffinity(0, {0})) if hasattr(os, "sched_setaffinity") else None
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=pin)
    try:
        yield
    finally:
        p.kill()
        p.wait()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        name = ""
    return f"{name or platform.processor() or 'unknown CPU'}, {os.cpu_count()} cores"


def repeat(one: Callable[[bool], list[tuple[str, Any]]], reps: int) -> int:
    """A bands benchmark's command line (``--reps``, ``--busy-every``): ``one(busy)`` traces and measures once,
    returning (setting, row) pairs; every ``--busy-every``-th repetition is traced beside a busy process.  Prints the
    machine and ``summary``."""
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=reps)
    ap.add_argument("--busy-every", type=int, default=2, help="every Nth traced run beside a busy process (0: never)")
    args = ap.parse_args()
    results = []
    for i in range(args.reps):
        loud = args.busy_every > 0 and i % args.busy_every == args.busy_every - 1
        results += [(setting, loud, row) for setting, row in one(loud)]
    print(f"# {cpu_model()}; {args.reps} repetitions" + (f", every {args.busy_every}. traced beside a busy process"
                                                          if args.busy_every else ", all quiet"))
    print(summary(results))
    return 0


def summary(results: list[tuple[str, bool, Any]]) -> str:
    """``results``: (knob, traced beside a busy process, row with band_ms / measured_ms / spread_pct)."""
    from commprof.analysis.uncertainty.maths import DISTURBED_PCT, variation_pct

    per: dict[tuple[str, bool], list[Any]] = defaultdict(list)
    for knob, was_busy, row in results:
        per[(knob, was_busy)].append(row)
    lines = [f"{'knob':<58} {'traced':<8} {'inside':>8} {'loud meas.':>10} {'mean ±%':>8} {'pred. var %':>11}"]
    for (knob, was_busy), rows in sorted(per.items()):
        banded = [r for r in rows if r.band_ms]
        quiet = [r for r in banded if r.spread_pct is None or r.spread_pct <= DISTURBED_PCT]
        inside = sum(1 for r in quiet if r.band_ms[0] <= r.measured_ms <= r.band_ms[1])
        half = [50 * (r.band_ms[1] - r.band_ms[0]) / r.predicted_ms for r in banded if r.predicted_ms]
        moved = variation_pct([r.predicted_ms for r in rows])  # the prediction from traced run to traced run
        lines.append(f"{knob:<58} {'busy' if was_busy else 'quiet':<8} {inside:>4}/{len(quiet):<3} "
                     f"{len(banded) - len(quiet):>10} {sum(half) / len(half) if half else 0:>8.1f} "
                     f"{'-' if moved is None else f'{moved:.1f}':>11}")
    return "\n".join(lines)
