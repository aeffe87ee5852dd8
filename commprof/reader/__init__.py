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
from ..formats import sidecar as F
from ..model import RankTrace
from . import discover as _discover
from . import sidecar
from .comm.commrules import CommRules
from .decode import jsonio
from .decode.stream import ChunkLayoutError
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
    hint = _discover.rank_from_name(path)
    try:
        rt = parse_document(path, jsonio.read_document(path, max_bytes), rank_hint=hint, rules=rules)
    except ChunkLayoutError:  # a large file whose event list could not be cut into slices: decode it whole
        rt = parse_document(path, jsonio.read_document(path, max_bytes, chunked=False), rank_hint=hint, rules=rules)
    sp = (sidecars or {}).get(rt.rank)
    return with_sidecar(rt, sp) if sp is not None else rt


def with_sidecar(rt: RankTrace, path: Path) -> RankTrace:
    """The rank with its sidecar, its times moved onto the trace's clock; a sidecar that cannot be used is ignored
    with a warning."""
    try:
        side = sidecar.parse(path, sidecar.read_raw(path), rt.base_time_ns)
    except InputError as e:
        return replace(rt, warnings=(*rt.warnings, f"{e}; sidecar ignored"))
    if side.rank != rt.rank:
        return replace(rt, warnings=(*rt.warnings, f"{side.path}: sidecar says rank {side.rank} but the trace is "
                                                   f"rank {rt.rank}; sidecar ignored"))
    return replace(rt, sidecar=side, world_size=rt.world_size or side.world_size, backend=rt.backend or side.backend)


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
