"""Numbers as the terminal and the HTML show them, and the sentence that says which step advice is measured
against."""

from __future__ import annotations

from typing import Any

from ..analysis.steptimes import GIVEN, OUTSIDE, PROFILED, PROFILER_SLOWED
from ..analysis.uncertainty.bands import DISTURBED


def first_warnings(warnings: tuple[str, ...]) -> list[str]:
    """The warnings a report says in its first lines, not only among the others at its end: a disturbed traced run,
    a profiler that slowed the steps it recorded (the text's and the HTML's alike)."""
    return [w for w in warnings if w.startswith((DISTURBED, PROFILER_SLOWED))]


def num(x: float | None, nd: int = 2) -> str:
    """A number with ``nd`` decimals; "-" for none."""
    return "-" if x is None else f"{x:.{nd}f}"


def size(n: float | None) -> str:
    """Bytes in kB / MB / GB (powers of 1000)."""
    if n is None:
        return "-"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"


def model_check_text(c: Any, rates: Any = None) -> str:
    """The what-if model against the traced run (an ``advice.ModelCheck``), and where its operation costs came
    from (an ``rates.OpRates``)."""
    src = "commprof's sidecar" if c.source == "sidecar" else "the trace alone"
    note = "".join(f" {n}." for n in c.notes)
    costs = ""
    if rates is not None:
        s = rates.sources
        costs = (f" Operation costs: in-place passes {s.get('pass')}, fresh memory {s.get('fresh')}, PowerSGD's "
                 f"matrix products {s.get('products')}.")
    return (f"Model check (rank {c.rank}, inputs from {src}): replaying each profiled step from its own gradient "
            f"times, the step of median error gives {c.step_model_ms:.1f} ms against {c.step_measured_ms:.1f} ms "
            f"measured ({c.error_pct:+.1f}%), and {c.exposed_model_ms:.1f} ms of communication after the backward pass "
            f"against {c.exposed_measured_ms:.1f} ms.{note}{costs}")


# where the step advice is measured against comes from (``steptimes.step_now_ms``), said where it is not the
# figure the report gives as the step outside the profiler
_STEP_NOW_WHY = {PROFILED: "the mean profiled step (too few steps outside the profiler to stand for it)",
                 GIVEN: "the step given (step_ms)",
                 OUTSIDE: "the median of the steps outside the profiler without the slow steps left out of the run's "
                          "noise (a slow episode's, periodic ones)"}


def step_now_note(ranks: list[dict[str, Any]]) -> str:
    """The ranks whose step as it is now, which advice is measured against (summary.json ``step_now_ms``), is not
    their step outside the profiler as the report gives it (``step_ms_unprofiled``), with what it is instead; ""
    where none."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in ranks:
        now, out, basis = r.get("step_now_ms"), r.get("step_ms_unprofiled"), r.get("step_now_basis")
        if now is not None and out is not None and basis is not None and abs(now - out) >= 0.005:
            groups.setdefault(basis, []).append(r)
    parts = []
    for basis, rs in sorted(groups.items()):
        who = ", ".join(f"rank {r['rank']} {r['step_now_ms']:.2f} ms" for r in rs[:4])
        more = f" and {len(rs) - 4} more ranks" if len(rs) > 4 else ""
        parts.append(f"{who}{more}: {_STEP_NOW_WHY.get(basis, basis)}")
    return f"the step as it is now, which advice is measured against: {'; '.join(parts)}" if parts else ""
