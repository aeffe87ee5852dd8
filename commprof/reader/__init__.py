"""Files -> model.  ``load(path)`` is the public entry; the only package that knows raw trace keys."""

from __future__ import annotations

import gc
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..analysis import digest as _digest
from ..errors import InputError
from ..model import RankTrace, Run, SpillDir
from . import discover as _discover
from . import kineto, sidecar
from . import spill as _spill

__all__ = ["load", "load_rank"]

_PARALLEL_MIN_BYTES = 8 * 1024**2  # of JSON: worker processes pay off from about here (measured)
_SPILL_MIN_BYTES = 8 * 1024**2  # of JSON: spill the lanes from here (below, a run's lanes are a few MB at most)


def load_rank(trace_path: str | Path, sidecars: dict[int, Path] | None = None,
              max_bytes: int = kineto.DEFAULT_MAX_BYTES) -> RankTrace:
    """Parse one rank's trace, with its sidecar when one is given for its rank."""
    with _gc_paused():
        return _load_rank(Path(trace_path), sidecars, max_bytes)


@contextmanager
def _gc_paused():
    """The parser allocates millions of small objects and no reference cycles: the cyclic GC would only walk
    them again and again (measured: 5% of a 54 MB trace's parse, more as the heap grows)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _load_rank(path: Path, sidecars: dict[int, Path] | None, max_bytes: int) -> RankTrace:
    doc = kineto.read_document(path, max_bytes)
    di = kineto.peek_distributed_info(doc)
    rank = di.get("rank") if isinstance(di.get("rank"), int) else _discover.rank_from_name(path)
    side = None
    side_warn: list[str] = []
    sp = (sidecars or {}).get(rank) if rank is not None else None
    if sp is not None:
        base = doc.get("baseTimeNanoseconds")
        base = base if isinstance(base, int) and not isinstance(base, bool) else 0
        try:
            side = sidecar.parse(sp, sidecar.read_raw(sp), base)
        except InputError as e:
            side_warn.append(f"{e}; sidecar ignored")
    try:
        rt = kineto.parse_document(path, doc, rank_hint=rank, sidecar=side)
    except kineto.ChunkLayoutError:  # a large file not laid out as torch writes it: decode it whole
        doc = kineto.read_document(path, max_bytes, chunked=False)
        rt = kineto.parse_document(path, doc, rank_hint=rank, sidecar=side)
    if side_warn:
        rt = _with_warnings(rt, side_warn)
    return rt


def _with_warnings(rt: RankTrace, extra: list[str]) -> RankTrace:
    from dataclasses import replace
    return replace(rt, warnings=tuple(rt.warnings) + tuple(extra))


def _index_sidecars(paths: tuple[Path, ...], warnings: list[str]) -> tuple[dict[int, Path], dict[int, str]]:
    by_rank: dict[int, Path] = {}
    run_ids: dict[int, str] = {}
    for p in paths:
        try:
            doc = sidecar.read_raw(p)
        except InputError as e:
            warnings.append(f"{e}; sidecar ignored")
            continue
        r = doc["rank"]
        if r in by_rank:
            warnings.append(f"{p}: a second sidecar for rank {r} (first: {by_rank[r].name}); ignored")
            continue
        by_rank[r] = p
        run_ids[r] = str(doc.get("run_id", ""))
    return by_rank, run_ids


def load(path: str | Path, *, ranks: list[int] | None = None, max_bytes: int = kineto.DEFAULT_MAX_BYTES,
         workers: int | None = None, progress: Callable[[int, int, str], Any] | None = None,
         executor: Executor | None = None, steps: Iterable[int] | None = None, spill: bool | None = None) -> Run:
    """Load every rank's trace in a folder (or one trace file) into a ``Run``.

    The map step (parse one rank's file) runs in local worker processes when the traces are large, or on
    ``executor`` when one is given: any ``concurrent.futures.Executor``, such as a Dask cluster's
    (``distributed.Client(address).get_executor()``), for runs with thousands of ranks.  Its workers must see
    the same paths.  The result is the same as a single-process load.

    ``spill`` (default: when the traces hold 8 MB of JSON or more): the map step also runs the per-rank
    analyses (for ``steps``, as ``analyze(run, steps=...)`` will be given; None = all) and writes each rank's
    interval lanes to a temporary folder, memory-mapped where read and removed with the run; the run then holds
    its steps, collectives and per-step results, not one entry per kernel (``commprof.analysis.digest``).

    Ranks come from ``distributedInfo.rank``, else from the file name.  Sidecars
    (``rank{R}.commprof.json``) are matched by rank.  ``ranks`` restricts the ranks loaded.
    ``progress(done, total, name)`` is called after each file.
    Raises ``InputError`` (one line: file and problem) when nothing usable is there.
    """
    found = _discover.discover(path)
    warnings: list[str] = [f"skipped {p}: not a regular file (a dangling link, FIFO or socket)"
                           for p in found.not_regular]
    side_by_rank, run_ids = _index_sidecars(found.sidecars, warnings)
    traces = list(found.traces)
    if ranks is not None:
        wanted = set(ranks)
        traces = [t for t in traces if _discover.rank_from_name(t) in wanted or _discover.rank_from_name(t) is None]
    total = sum(_size(t) for t in traces)
    n_workers = workers if workers is not None else min(len(traces), os.cpu_count() or 1)
    results: list[RankTrace] = []
    errors: list[InputError] = []
    step_sel = _digest.steps_key(steps)
    folder = None
    if total >= _SPILL_MIN_BYTES if spill is None else spill:
        try:
            folder = tempfile.mkdtemp(prefix="commprof-lanes-")
        except OSError as e:  # no writable TMPDIR: the lanes stay in memory
            warnings.append(f"could not make a folder for the ranks' intervals in {tempfile.gettempdir()} ({e}); "
                            "they stay in memory")
    owner = SpillDir(folder) if folder is not None else None  # removes the folder once nothing reads from it

    def task(i: int, t: Path, remote: bool = False) -> tuple[Any, ...]:
        """(function, *arguments) of one rank's map step."""
        if folder is None:
            return load_rank, t, side_by_rank, max_bytes
        # a worker on another machine keeps the lanes in memory; this process spills them as they arrive
        return _spill.map_rank, t, side_by_rank, max_bytes, step_sel, None if remote else folder, f"t{i}"

    def take(get, i: int) -> None:
        # one unusable rank does not sink the others: it is skipped with a warning
        try:
            rt = get()
        except InputError as e:
            errors.append(e)
            return
        if owner is not None:
            rt = _spill.spill(rt, owner.path, f"t{i}")
            _spill.adopt(rt, owner)
        results.append(rt)

    def mapped(pool: Executor, remote: bool) -> None:
        # taken off a deque in order, so that no future keeps a rank's result once it is taken
        pending = deque((i, t, pool.submit(*task(i, t, remote))) for i, t in enumerate(traces))
        while pending:
            i, t, fut = pending.popleft()
            take(fut.result, i)
            del fut
            if progress:
                progress(i + 1, len(traces), t.name)

    if executor is not None:
        mapped(executor, remote=True)
    elif n_workers > 1 and len(traces) > 1 and total >= _PARALLEL_MIN_BYTES:
        with ProcessPoolExecutor(max_workers=n_workers) as pool:
            mapped(pool, remote=False)
    else:
        for i, t in enumerate(traces):
            fn, *args = task(i, t)
            take(lambda fn=fn, args=args: fn(*args), i)
            if progress:
                progress(i + 1, len(traces), t.name)
    if errors and not results:
        raise errors[0]
    warnings.extend(f"skipped {e.path}: {e.problem}" for e in errors)
    if ranks is not None:
        results = [r for r in results if r.rank in set(ranks)]
        if not results:
            raise InputError(path, f"none of the ranks {sorted(set(ranks))} is in this folder")
    return assemble(Path(path), results, run_ids, warnings)


def _size(p: Path) -> int:
    """Bytes of JSON a trace holds (traces compress about 10x; the parallel threshold is about parsing work)."""
    try:
        return kineto.json_size(p)
    except OSError:
        return 0


def assemble(path: Path, results: list[RankTrace], run_ids: dict[int, str], warnings: list[str]) -> Run:
    by_rank: dict[int, RankTrace] = {}
    for rt in results:
        if rt.rank in by_rank:
            raise InputError(rt.path, f"claims rank {rt.rank}, as does {by_rank[rt.rank].path}; "
                                      "keep one trace per rank in the folder")
        by_rank[rt.rank] = rt
    worlds = {rt.world_size for rt in results if rt.world_size is not None}
    if len(worlds) > 1:
        odd = next(rt for rt in results if rt.world_size != max(worlds))
        raise InputError(odd.path, f"world size {odd.world_size} differs from other ranks "
                                   f"({sorted(worlds)}): traces of different jobs are mixed")
    used_ids = {run_ids[r] for r in by_rank if run_ids.get(r)}
    if len(used_ids) > 1:
        first = min(by_rank)
        other = next(r for r in sorted(by_rank) if run_ids.get(r) and run_ids[r] != run_ids.get(first))
        side = by_rank[other].sidecar
        raise InputError(side.path if side is not None else by_rank[other].path,
                         f"belongs to run {run_ids[other]}, but rank {first} to run {run_ids.get(first)}: "
                         "files of different runs are mixed in one folder")
    world = max(worlds) if worlds else None
    ordered = tuple(by_rank[r] for r in sorted(by_rank))
    missing: tuple[int, ...] = ()
    if world is not None and len(ordered) < world and len(ordered) > 1:
        missing = tuple(r for r in range(world) if r not in by_rank)
        shown = ", ".join(map(str, missing[:16])) + (" …" if len(missing) > 16 else "")
        warnings.append(f"{len(ordered)} of {world} ranks present; missing ranks: {shown}")
    with_side = [rt for rt in ordered if rt.sidecar is not None]
    if 0 < len(with_side) < len(ordered):
        lacking = [rt.rank for rt in ordered if rt.sidecar is None]
        warnings.append(f"ranks {lacking} have no commprof sidecar; their bucket analysis is skipped")
    return Run(path=str(path), ranks=ordered, world_size=world, run_id=next(iter(used_ids), None),
               missing_ranks=missing, warnings=tuple(warnings))
