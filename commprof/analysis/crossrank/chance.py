"""How often jitter alone would name a rank: the chance that a count of steps held among a job's ranks comes from
noise (``chance_p``), whether a verdict is weak, and what a weak verdict's sentence adds (how many steps would
confirm it)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Protocol

ALPHA = 0.05  # the level a count of steps must beat


class Count(Protocol):
    """What a verdict's count is (``rootcause.Count`` has it): steps analyzed, steps held, the ranks that could
    hold a step, the ranks named."""

    @property
    def steps(self) -> int: ...
    @property
    def steps_on_path(self) -> int: ...
    @property
    def contenders(self) -> int: ...
    @property
    def ranks(self) -> tuple[int, ...]: ...


def chance_p(c: Count) -> float:
    """How often jitter alone would let as many ranks as are named hold the job back in as many steps: each step's
    holder one of the ``contenders`` (the ranks of the analyzed steps) at random, so a given set of k ranks holds a
    step with chance k/m; the chance that one of the C(m, k) sets holds ``steps_on_path`` of ``steps`` or more (a
    union bound, exact where a verdict needs most steps).  One of two ranks: 2 of 3 steps is what alternating noise
    always gives, 3 of 3 a quarter of the time; one of eight, 3 of 3 is not (p = 0.016); two of eight, 3 of 3 is
    (p = 0.44).  Exact in integers, so a count at the threshold is not decided by rounding."""
    return _p(c.steps, c.steps_on_path, *_sets(c))


def _p(n: int, held: int, m: int, k: int) -> float:
    if held <= 0 or n <= 0:
        return 1.0
    ways = sum(math.comb(n, i) * k ** i * (m - k) ** (n - i) for i in range(held, n + 1))
    return float(min(Fraction(math.comb(m, k) * ways, m ** n), Fraction(1)))


def _sets(c: Count) -> tuple[int, int]:
    """(m, k): the ranks that could hold a step (at least 2) and how many the verdict names (1 to m - 1)."""
    m = max(c.contenders, 2)
    return m, min(max(len(c.ranks), 1), m - 1)


def steps_needed(c: Count) -> int:
    """The fewest analyzed steps, all held, whose count jitter alone reaches at most ``ALPHA`` of the time."""
    m, k = _sets(c)
    return max(2, math.ceil(math.log(math.comb(m, k) / ALPHA) / math.log(m / k)))


def weak(c: Count) -> bool:
    """A verdict resting on one analyzed step, or on a count of steps that jitter alone reaches (``chance_p``)."""
    return c.steps == 1 or chance_p(c) > ALPHA


def holds(c: Count, verb: str = "holds") -> str:
    """The verdict's verb: "holds" (or "hold"), "may hold" where the verdict is weak (``weak``): its lead must not
    claim more than its count of steps supports (the README demo's two like ranks: one named in 3 of 3 steps, p =
    0.25, in one run of three)."""
    return "may hold" if weak(c) else verb


def one(c: Count) -> str:
    """What a weak verdict (``weak``) adds to its sentence."""
    if c.steps == 1:
        return ": trace more steps to confirm"
    if not weak(c):
        return ""
    p = chance_p(c)
    odds = (f"a count chance alone gives among {c.contenders} ranks, p = {p:.2g}" if p < 0.995 else
            f"what chance alone gives among {c.contenders} ranks")
    if c.steps_on_path >= c.steps:  # held in every step: too few steps
        return f" ({odds}: trace at least {steps_needed(c)} steps, the profiler schedule's active=, to confirm)"
    n = _steps_at_share(c)  # held in fewer: "at least 6 steps" would confirm 6 of 6, not 5 of 6 or 2 of 3
    more = (f"at that share of steps, about {n} steps would confirm it (the profiler schedule's active=)" if n else
            "a share of steps chance reaches at any count: more steps would not confirm it")
    return f" ({odds}; {more})"


def one_in_episode(c: Count) -> str:
    """What a weak verdict adds over an episode told by its size (``changepoint.size_episode``): more steps cannot
    confirm an episode of three, its count stays what chance gives, its size is what stands out."""
    if not weak(c) or c.steps == 1:
        return one(c)
    p = chance_p(c)
    return (f" (a count chance alone gives among {c.contenders} ranks, p = {p:.2g}, in an episode too short for its "
            "count to tell; its size is what stands out, below)")


def _steps_at_share(c: Count, most: int = 400) -> int | None:
    """The fewest analyzed steps at which the verdict's share of steps (``steps_on_path`` of ``steps``) would beat
    chance (``chance_p`` at most ``ALPHA``); None where no count up to ``most`` does (a share at or under chance's).
    A verdict held in 5 of 6 steps was told to trace "at least 6 steps", the count that confirms 6 of 6."""
    m, k = _sets(c)
    share = c.steps_on_path / c.steps
    if share <= k / m:
        return None
    for n in range(c.steps + 1, most + 1):
        if _p(n, math.ceil(share * n), m, k) <= ALPHA:
            return n
    return None
