"""One-off stalls of a traced run: steps left out of its noise (``maths.noise``), grouped by step.

When one rank stalls, every rank that meets it in a collective waits as long: the same step is an outlier on each
of them.  A stall is therefore named once per step, with the ranks it shows on ("step 8 on ranks 0, 1 (2151-2152 ms,
13.0x the median of the other steps)"), and a report names at most ``SHOWN`` of them in its text (summary.json
holds them all)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from ...numlist import ranks_text

SHOWN = 3  # stalls named in a sentence; the others counted


class Stall(NamedTuple):
    """A step left out of the run's noise on the ranks it shows on."""

    step: int
    ranks: tuple[int, ...]
    low_ms: float
    high_ms: float
    factor: float  # the smallest, over those ranks, of the step over the median of the rank's other steps
    profiled: bool


def group(found: Iterable[tuple[int, int, float, float, bool]]) -> tuple[Stall, ...]:
    """``found``: (rank, step, ms, factor, profiled) per outlier step of a rank; one ``Stall`` per step."""
    by: dict[tuple[int, bool], list[tuple[int, float, float]]] = defaultdict(list)
    for rank, step, ms, factor, profiled in found:
        by[(step, profiled)].append((rank, ms, factor))
    return tuple(Stall(step, tuple(sorted(r for r, _m, _f in v)), min(m for _r, m, _f in v),
                       max(m for _r, m, _f in v), min(f for _r, _m, f in v), profiled)
                 for (step, profiled), v in sorted(by.items()))


def describe(stalls: Sequence[Stall]) -> str:
    """The stalls in a sentence, at most ``SHOWN`` of them."""
    def one(s: Stall) -> str:
        ms = f"{s.low_ms:.0f} ms" if round(s.low_ms) == round(s.high_ms) else f"{s.low_ms:.0f}-{s.high_ms:.0f} ms"
        where = "profiled step" if s.profiled else "step"
        return f"{where} {s.step} on {ranks_text(s.ranks)} ({ms}, {s.factor:.1f}x the median of the other steps)"

    text = ", ".join(one(s) for s in stalls[:SHOWN])
    more = len(stalls) - SHOWN
    return text + (f" and {more} more (summary.json noise.stalls_left_out)" if more > 0 else "")
