"""``load()``: every rank of a run, parsed in a map step (worker processes, or any ``concurrent.futures``
executor such as a Dask cluster's) and assembled into one ``Run`` in the reduce step."""

from __future__ import annotations

import functools
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.perrank import RankDigest, steps_key
from ..errors import InputError, NoUsableTraces
from ..model import RankTrace, Run, SpillDir
from ..numlist import number_list
from ..reader import discover as _discover
from ..reader import read_sidecars
from ..reader.comm.commrules import CommRules, user_rule
from ..reader.decode.jsonio import DEFAULT_MAX_BYTES, json_size
from . import spill as _spill
from .together import Together, judge, select

PARALLEL_MIN_BYTES = 8 * 1024**2  # of JSON: worker processes pay off from about here (measured)
SPILL_MIN_BYTES = 8 * 1024**2  # of JSON: spill the lanes from here (below, a run's lanes are a few MB at most)


@dataclass(frozen=True, slots=True)
class LoadedRun(Run):
    """A ``Run`` as ``load()`` made it, with what its map step computed per rank (``analyze()`` uses it when asked
    for the same steps)."""

    digests: dict[int, RankDigest] = field(default_factory=dict)


def load(path: str | Path, *, ranks: list[int] | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
         workers: int | None = None, progress: Callable[[int, int, str], Any] | None = None,
         executor: Executor | None = None, steps: Iterable[int] | None = None, spill: bool | None = None,
         comm_kernels: Iterable[str] = (), cycle: int | None = None, per_rank: bool = False) -> Run:
    """Load every rank's trace in a folder (or one trace file) into a ``Run``.

    The map step (parse one rank's file) runs in local worker processes when the traces are large, or on
    ``executor`` when one is given: any ``concurrent.futures.Executor``, such as a Dask cluster's
    (``distributed.Client(address).get_executor()``), for runs with thousands of ranks.  Its workers must see
    the same paths.  The result is the same as a single-process load.

    ``spill`` (default: when the traces hold 8 MB of JSON or more): the map step also runs the per-rank
    analyses (for ``steps``, as ``analyze(run, steps=...)`` will be given; None = all) and writes each rank's
    interval lanes to a temporary folder, memory-mapped where read and removed with the run; the run then holds
    its steps, collectives and per-step results, not one entry per kernel (``commprof.analysis.perrank``).

    ``comm_kernels``: more GPU kernels that move data between ranks, as regular expressions searched in kernel
    names, each optionally prefixed with the operation they perform (``"all_to_all=my_ep::dispatch"``); they
    come before the built-in table (``commprof.reader.comm.commrules``).

    Several profiler cycles per rank: the run of one (``commprof.engine.cycles``), the last complete one, or
    ``cycle`` (1-based), or the one ``steps`` falls in.  Ranks that cannot have run together raise ``InputError``
    (``commprof.engine.coherence``), unless ``per_rank``: the run is then ``per_rank_only`` (no cross-rank claim).

    Ranks come from ``distributedInfo.rank``, else from the file name.  Sidecars
    (``rank{R}.commprof.json``) are matched by rank.  ``ranks`` restricts the ranks loaded.
    ``progress(done, total, name)`` is called after each file.
    Raises ``InputError`` (one line: file and problem) when nothing usable is there.
    """
    rules = _rules(comm_kernels)
    found = _discover.discover(path)
    warnings: list[str] = [f"skipped {p}: not a regular file (a dangling link, FIFO or socket)"
                           for p in found.not_regular]
    side_by_rank, run_ids = read_sidecars(found.sidecars, warnings)
    traces = list(found.traces)
    if ranks is not None:
        wanted = set(ranks)
        traces = [t for t in traces if _discover.rank_from_name(t) in wanted or _discover.rank_from_name(t) is None]
    total = sum(_size(t) for t in traces)
    folder = _spill_folder(total >= SPILL_MIN_BYTES if spill is None else spill, warnings)
    mapper = _Mapper(traces, side_by_rank, max_bytes, rules, steps, folder, progress)
    n_workers = workers if workers is not None else min(len(traces), os.cpu_count() or 1)
    if executor is not None:
        mapper.run(executor, remote=True)
    elif n_workers > 1 and len(traces) > 1 and total >= PARALLEL_MIN_BYTES:
        with ProcessPoolExecutor(max_workers=n_workers) as pool:
            mapper.run(pool, remote=False)
    else:
        mapper.run(None, remote=False)
    if mapper.errors and not mapper.results:
        first = mapper.errors[0]
        raise NoUsableTraces(first.path, first.problem, tuple(f"{e.path}: {e.problem}" for e in mapper.errors))
    warnings.extend(f"skipped {e.path}: {e.problem}" for e in mapper.errors)
    results = _only(mapper.results, ranks, path)
    ask = Together(cycle=cycle, steps=steps_key(steps), per_rank=per_rank,
                   ranks=tuple(sorted(set(ranks))) if ranks is not None else None, skipped=tuple(
        f"{Path(e.path).name} ({e.problem})" for e in mapper.errors))
    results, note = select(Path(path), results, ask)
    return judge(assemble(Path(path), results, run_ids, warnings, ask.ranks), ask, note)


def _only(results: list[_spill.Mapped], ranks: list[int] | None, path: str | Path) -> list[_spill.Mapped]:
    if ranks is None:
        return results
    out = [r for r in results if r[0].rank in set(ranks)]
    if not out:
        raise InputError(path, f"none of the ranks {sorted(set(ranks))} is in this folder")
    return out


def _spill_folder(wanted: bool, warnings: list[str]) -> SpillDir | None:
    if not wanted:
        return None
    try:
        return SpillDir(tempfile.mkdtemp(prefix="commprof-lanes-"))  # removed once nothing reads from it
    except OSError as e:  # no writable TMPDIR: the lanes stay in memory
        warnings.append(f"could not make a folder for the ranks' intervals in {tempfile.gettempdir()} ({e}); "
                        "they stay in memory")
        return None


class _Mapper:
    """The map step over a run's trace files; one unusable rank does not sink the others."""

    def __init__(self, traces: list[Path], sidecars: dict[int, Path], max_bytes: int, rules: CommRules | None,
                 steps: Iterable[int] | None, owner: SpillDir | None,
                 progress: Callable[[int, int, str], Any] | None) -> None:
        self.traces, self.sidecars, self.max_bytes, self.rules = traces, sidecars, max_bytes, rules
        self.steps = steps_key(steps)
        self.owner, self.progress = owner, progress
        self.results: list[_spill.Mapped] = []
        self.errors: list[InputError] = []

    def task(self, i: int, t: Path, remote: bool) -> tuple[Any, ...]:
        """(function, *arguments) of one rank's map step."""
        if self.owner is None:
            return _spill.map_rank, t, self.sidecars, self.max_bytes, self.rules
        # a worker on another machine keeps the lanes in memory; this process spills them as they arrive
        return (_spill.map_rank, t, self.sidecars, self.max_bytes, self.rules, self.steps,
                None if remote else self.owner.path, f"t{i}", True)

    def take(self, get: Callable[[], _spill.Mapped], i: int) -> None:
        try:
            rt, d = get()
        except InputError as e:
            self.errors.append(e)
            return
        if self.owner is not None:
            rt, d = _spill.spill(rt, d, self.owner.path, f"t{i}")
            _spill.adopt(rt, d, self.owner)
        self.results.append((rt, d))

    def run(self, pool: Executor | None, remote: bool) -> None:
        n = len(self.traces)
        if pool is None:
            for i, t in enumerate(self.traces):
                fn, *args = self.task(i, t, remote)
                self.take(functools.partial(fn, *args), i)
                if self.progress:
                    self.progress(i + 1, n, t.name)
            return
        # taken off a deque in order, so that no future keeps a rank's result once it is taken
        pending = deque((i, t, pool.submit(*self.task(i, t, remote))) for i, t in enumerate(self.traces))
        while pending:
            i, t, fut = pending.popleft()
            self.take(fut.result, i)
            del fut
            if self.progress:
                self.progress(i + 1, n, t.name)


def _rules(patterns: Iterable[str]) -> CommRules | None:
    """The user's communication kernels before the built-in table; None: the built-in table alone."""
    extra = []
    for p in patterns:
        try:
            extra.append(user_rule(p))
        except ValueError as e:
            raise InputError("comm_kernels=", str(e)) from None
    return CommRules(extra) if extra else None


def _size(p: Path) -> int:
    """Bytes of JSON a trace holds (traces compress about 10x; the parallel threshold is about parsing work)."""
    try:
        return json_size(p)
    except OSError:
        return 0


def assemble(path: Path, results: list[tuple[RankTrace, RankDigest | None]], run_ids: dict[int, str],
             warnings: list[str], asked: tuple[int, ...] | None = None) -> LoadedRun:
    """The reduce step's first task: one run of ranks that belong together, or one clear error.  ``asked``: the
    ranks ``--ranks`` restricted the load to (the others are left out, not missing)."""
    by_rank: dict[int, RankTrace] = {}
    for rt, _d in results:
        if rt.rank in by_rank:
            raise InputError(rt.path, f"claims rank {rt.rank}, as does {by_rank[rt.rank].path}; "
                                      "keep one trace per rank in the folder")
        by_rank[rt.rank] = rt
    world = _world_size([rt for rt, _ in results])
    run_id = _run_id(by_rank, run_ids)
    ordered = tuple(by_rank[r] for r in sorted(by_rank))
    missing: tuple[int, ...] = ()
    if asked is not None and (absent := [r for r in asked if r not in by_rank and (world is None or r >= world)]):
        out_of = f" (world size {world})" if world is not None else ""
        warnings.append(f"--ranks asked for {_ranks(absent)}, not in this run{out_of}")  # below it: missing, said below
    if world is not None and len(ordered) < world:
        missing = tuple(r for r in range(world) if r not in by_rank)
        lost = [r for r in missing if asked is None or r in asked]
        if lost:
            warnings.append(f"{len(ordered)} of {world} ranks present; missing ranks: {number_list(lost, limit=16)}. "
                            "Waits, stragglers and transfer times without waits are measured across the ranks "
                            "present only; every rank's trace is needed for all of them")
    with_side = [rt for rt in ordered if rt.sidecar is not None]
    if 0 < len(with_side) < len(ordered):
        lacking = [rt.rank for rt in ordered if rt.sidecar is None]
        warnings.append(f"ranks {lacking} have no commprof sidecar; their bucket analysis is skipped")
    return LoadedRun(path=str(path), ranks=ordered, world_size=world, run_id=run_id, missing_ranks=missing,
                     warnings=tuple(warnings), digests={rt.rank: d for rt, d in results if d is not None})


def _ranks(rs: list[int]) -> str:
    return f"rank {rs[0]}" if len(rs) == 1 else f"ranks {number_list(rs, limit=16)}"


def _world_size(ranks: list[RankTrace]) -> int | None:
    worlds = {rt.world_size for rt in ranks if rt.world_size is not None}
    if len(worlds) > 1:
        odd = next(rt for rt in ranks if rt.world_size != max(worlds))
        raise InputError(odd.path, f"world size {odd.world_size} differs from other ranks "
                                   f"({sorted(worlds)}): traces of different jobs are mixed")
    return max(worlds) if worlds else None


def _run_id(by_rank: dict[int, RankTrace], run_ids: dict[int, str]) -> str | None:
    used_ids = {run_ids[r] for r in by_rank if run_ids.get(r)}
    if len(used_ids) > 1:
        first = min(by_rank)
        other = next(r for r in sorted(by_rank) if run_ids.get(r) and run_ids[r] != run_ids.get(first))
        side = by_rank[other].sidecar
        raise InputError(side.path if side is not None else by_rank[other].path,
                         f"belongs to run {run_ids[other]}, but rank {first} to run {run_ids.get(first)}: "
                         "files of different runs are mixed in one folder")
    return next(iter(used_ids), None)


def digests_of(run: Run) -> dict[int, RankDigest]:
    """What the map step computed per rank, for a run ``load()`` made (empty for others)."""
    return run.digests if isinstance(run, LoadedRun) else {}
