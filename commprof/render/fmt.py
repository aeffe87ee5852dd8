"""Numbers as the terminal and the HTML show them."""

from __future__ import annotations


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
