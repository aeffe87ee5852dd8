"""Numbers as the terminal and the HTML show them."""

from __future__ import annotations

from typing import Any


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


def step_now_note(ranks: list[dict[str, Any]]) -> str:
    """Where a rank's steps outside the profiler are timed (summary.json ``step_ms_unprofiled``) but the step as it
    is now, which advice is measured against, is another figure (``step_now_basis``), the sentence that says which;
    else ""."""
    from ..analysis.steptimes import GIVEN, OUTSIDE, PROFILED

    why = {PROFILED: "the mean profiled step (too few steps outside the profiler to stand for it)",
           GIVEN: "the step given (--step-ms)"}
    other = sorted({r["step_now_basis"] for r in ranks
                    if r.get("step_ms_unprofiled") is not None and r.get("step_now_basis") not in (None, OUTSIDE)})
    return f"the step as it is now, which advice is measured against: {'; '.join(why.get(b, b) for b in other)}" \
        if other else ""
