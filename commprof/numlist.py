"""Lists of step and rank numbers in words: one formatter for every text that names them.

``number_list([0, 1, 2, 5, 7, 8, 9])`` -> ``"0-2, 5, 7-9"``: sorted, each number once, runs of ``min_run`` or more
consecutive numbers as a range (three for a set of ranks, "ranks 0, 1"; two for a window of steps, "steps 2-3"), at
most ``limit`` items (a range counts as one) and then " …".
"""

from __future__ import annotations

from collections.abc import Iterable


def number_list(nums: Iterable[int], limit: int | None = None, min_run: int = 3) -> str:
    """The numbers as "0-2, 5, 7-9" ("none" for none); with ``limit``, that many items and " …"."""
    runs: list[list[int]] = []
    for n in sorted(set(nums)):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    if not runs:
        return "none"
    items = [i for r in runs for i in ([f"{r[0]}-{r[-1]}"] if len(r) >= max(min_run, 2) else [str(n) for n in r])]
    cut = limit is not None and 0 < limit < len(items)
    return ", ".join(items[:limit] if cut else items) + (" …" if cut else "")


def ranks_text(ranks: Iterable[int], limit: int | None = None) -> str:
    """"rank 3", "ranks 0-3", "ranks 0, 2, 5": the ranks as a set (runs of three or more as ranges)."""
    distinct = set(ranks)
    return f"rank{'s' if len(distinct) != 1 else ''} {number_list(distinct, limit=limit)}"
