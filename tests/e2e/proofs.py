"""What the advisor's timing proofs (tests/e2e/test_*netns.py, test_pipeline.py) assert, in one place.

A proof traces a run, takes the report's predictions with their bands (``predicted_range_ms``), and measures the
settings without the profiler.  It asserts that each measurement lies in its band, where "the measurement" is the
median of the measured runs with its own confidence interval (Z deviations of its steps' variation over the
square root of the number of runs).  A proof runs again only on a disturbance it detects and names: the traced
run disturbed (the report's own noise figures say so), a measurement whose steps vary by more than
``DISTURBED_PCT``, or the traced settings measured more than ``DISTURBED_PCT`` away from the traced run's own step
(the machine's speed changed in between).  A traced run that is still disturbed must say so in its warnings, and
may then withhold its advice; a run the report calls quiet must advise.  A measurement still disturbed after the
repeat cannot test a band: the proof names it and checks the others."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from commprof.analysis.uncertainty.maths import DISTURBED_PCT, Z

__all__ = ["DISTURBED_PCT", "Z", "attempt", "check_bands", "disturbance", "drift", "holds", "quiet",
           "withheld_honestly"]


def disturbance(rows: Sequence[Any], info: dict) -> str | None:
    """Why this attempt cannot prove anything, named; None when neither the traced run nor a measurement was
    disturbed."""
    nz = info["report"].noise
    if nz.disturbed:
        return f"the traced run was disturbed ({nz.describe()})"
    moved = drift(rows)
    if moved is not None:
        return moved
    loud = [r for r in rows if r.spread_pct is not None and r.spread_pct > DISTURBED_PCT]
    if loud:
        return "the measurement was disturbed: " + "; ".join(f"{r.setting}: steps vary by {r.spread_pct:.1f}%"
                                                            for r in loud)
    return None


def attempt(proof: Callable[[], tuple[list, dict]]) -> tuple[list, dict]:
    rows, info = proof()
    why = disturbance(rows, info)
    if why is not None:
        print(f"\n{why}: traced and measured once more")
        rows, info = proof()
    return rows, info


def quiet(row: Any) -> bool:
    """A measurement whose steps vary by no more than DISTURBED_PCT: one that can test a band."""
    return row.spread_pct is None or row.spread_pct <= DISTURBED_PCT


def drift(rows: Sequence[Any]) -> str | None:
    """The traced settings themselves (the first row: its prediction is the traced run's own step outside the
    profiler) measured more than DISTURBED_PCT away: the machine's speed changed between the traced run and the
    measurements (another job's load came or went), so no row can test a band."""
    if not rows:
        return None
    r = rows[0]
    off = 100.0 * (r.measured_ms - r.predicted_ms) / r.predicted_ms if r.predicted_ms else 0.0
    if abs(off) <= DISTURBED_PCT:
        return None
    return (f"the machine's speed changed between the traced run and the measurements: the traced settings "
            f"({r.setting}) measured {off:+.1f}% from the traced run's own step")


def check_bands(rows: Sequence[Any], runs: int) -> list[Any]:
    """Assert that every quietly measured row lies in its band; name the rows whose measurement was disturbed
    (on the attempt kept, after one repeat): they cannot test a band, and the proof says so instead of guessing.
    Returns the rows checked."""
    moved = drift(rows)
    if moved is not None:
        print(f"not checked: {moved}")
        return []
    checked = [r for r in rows if quiet(r)]
    for r in rows:
        if not quiet(r):
            print(f"not checked: {r.setting}: its measurement was disturbed (steps vary by {r.spread_pct:.1f}%)")
    for r in checked:
        assert holds(r, runs), r
    return checked


def holds(row: Any, runs: int) -> bool:
    """The band holds the measured median, within the measurement's own confidence interval."""
    assert row.band_ms is not None, f"{row.setting}: no predicted_range_ms"
    lo, hi = row.band_ms
    ci = Z * (row.spread_pct or 0.0) / 100.0 / max(runs, 1) ** 0.5 * row.measured_ms
    return lo - ci <= row.measured_ms <= hi + ci


def withheld_honestly(info: dict) -> bool:
    """No advice: acceptable only from a traced run whose report says, in its warnings, it was disturbed, or that
    says which setting it did not advise and why (its band reaches the current step: the gain is within the run's
    own uncertainty, which a quiet run of a few profiled steps can have too)."""
    from commprof.analysis.uncertainty.bands import NOT_ADVISED

    rep = info["report"]
    disturbed = bool(rep.noise.disturbed) and any("disturbed" in w for w in rep.warnings)
    return disturbed or any(f.text.startswith(NOT_ADVISED) and "band that reaches the current step" in f.text
                            for f in rep.findings)
