"""Files -> model, one rank at a time: ``load_rank(trace) -> RankTrace``.  No analysis happens here; this is the
only package that knows raw trace keys (``commprof.formats.keys``) and the one classification table
(``classify``).  ``commprof.engine`` runs it over every rank of a run."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from ..errors import InputError
from ..formats import keys as K
from ..formats import sidecar as F
from ..model import RankTrace
from . import discover as _discover
from . import jsonio, sidecar
from .commrules import CommRules
from .kineto import parse_document

__all__ = ["load_rank", "read_sidecars", "parse_document"]


def load_rank(trace_path: str | Path, sidecars: dict[int, Path] | None = None,
              max_bytes: int = jsonio.DEFAULT_MAX_BYTES, rules: CommRules | None = None) -> RankTrace:
    """Parse one rank's trace, with its sidecar when one is given for its rank; ``rules``: which kernels are
    communication (the built-in table when None)."""
    with _gc_paused():
        return _load_rank(Path(trace_path), sidecars, max_bytes, rules)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The parser allocates millions of small objects and no reference cycles: the cyclic GC would only walk
    them again and again (measured: 5% of a 54 MB trace's parse, more as the heap grows)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _load_rank(path: Path, sidecars: dict[int, Path] | None, max_bytes: int, rules: CommRules | None) -> RankTrace:
    doc = jsonio.read_document(path, max_bytes)
    di = doc.info
    rank = di.get(K.DI_RANK) if isinstance(di.get(K.DI_RANK), int) else _discover.rank_from_name(path)
    side = None
    side_warn: list[str] = []
    sp = (sidecars or {}).get(rank) if rank is not None else None
    if sp is not None:
        base = doc.base_time_ns
        base = base if isinstance(base, int) and not isinstance(base, bool) else 0
        try:
            side = sidecar.parse(sp, sidecar.read_raw(sp), base)
        except InputError as e:
            side_warn.append(f"{e}; sidecar ignored")
    try:
        rt = parse_document(path, doc, rank_hint=rank, sidecar=side, rules=rules)
    except jsonio.ChunkLayoutError:  # a large file not laid out as torch writes it: decode it whole
        doc = jsonio.read_document(path, max_bytes, chunked=False)
        rt = parse_document(path, doc, rank_hint=rank, sidecar=side, rules=rules)
    if side_warn:
        rt = replace(rt, warnings=tuple(rt.warnings) + tuple(side_warn))
    return rt


def read_sidecars(paths: tuple[Path, ...], warnings: list[str]) -> tuple[dict[int, Path], dict[int, str]]:
    """The sidecars of a folder by rank, and each rank's run id; unreadable or duplicate ones are skipped with a
    warning."""
    by_rank: dict[int, Path] = {}
    run_ids: dict[int, str] = {}
    for p in paths:
        try:
            doc = sidecar.read_raw(p)
        except InputError as e:
            warnings.append(f"{e}; sidecar ignored")
            continue
        r = doc[F.RANK]
        if r in by_rank:
            warnings.append(f"{p}: a second sidecar for rank {r} (first: {by_rank[r].name}); ignored")
            continue
        by_rank[r] = p
        run_ids[r] = str(doc.get(F.RUN_ID, ""))
    return by_rank, run_ids
