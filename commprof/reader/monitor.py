"""Reader of a monitor folder: ``rank{R}.monitor.jsonl`` (rollups), ``rank{R}.hang.json`` (dumps),
``rank{R}.fault.txt`` (crash stacks) and PyTorch's own pickled Flight Recorder dumps (``*_trace_rank_{R}``).

A torn or malformed line, or a broken file beside healthy ones, is skipped with a warning naming it; a folder
whose monitor files are all unreadable is an InputError."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from ..errors import InputError, read_bounded
from ..formats import monitor as F
from ..model import (
    Crash,
    Frame,
    FREntry,
    HangDump,
    Issue,
    MonitorRank,
    MonitorRun,
    MonitorStep,
    RollupCollective,
    ThreadStack,
)
from .safepickle import load_plain
from .sidecar import env_record

_RANK = re.compile(r"rank[_-]?(\d+)")
_PICKLE = re.compile(r"_trace_rank_(\d+)(\.pkl)?$")
_FAULT_FRAME = re.compile(r'^\s+File "(.*)", line (\d+) in (.+)$')


def is_monitor_folder(path: Path) -> bool:
    return path.is_dir() and any(_kind(p) for p in path.iterdir() if p.is_file())


def _kind(p: Path) -> str | None:
    if p.name.endswith(F.MONITOR_SUFFIX):
        return "monitor"
    if p.name.endswith(F.HANG_SUFFIX):
        return "hang"
    if p.name.endswith(".fault.txt"):
        return "fault"
    if _PICKLE.search(p.name):
        return "pickle"
    return None


def _rank_of(p: Path, doc: Any = None) -> int | None:
    r = doc.get(F.RANK) if isinstance(doc, dict) else None
    if isinstance(r, int) and not isinstance(r, bool) and r >= 0:
        return r
    m = _PICKLE.search(p.name) or _RANK.search(p.name)
    return int(m.group(1)) if m else None


def _int(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def _sizes(v: Any) -> tuple[tuple[int, ...], ...]:
    if not isinstance(v, (list, tuple)):
        return ()
    return tuple(tuple(int(d) for d in s if _int(d) is not None) for s in v if isinstance(s, (list, tuple)))


def _entry(e: Any) -> FREntry | None:
    if not isinstance(e, dict):
        return None
    dt = e.get(F.E_IN_DTYPES)
    retired = e.get(F.E_RETIRED)
    return FREntry(_int(e.get(F.E_SEQ)), str(e.get(F.E_OP) or "?")[:100], str(e.get(F.E_PG) or "")[:100],
                   _sizes(e.get(F.E_IN_SIZES)), tuple(str(x)[:30] for x in dt) if isinstance(dt, (list, tuple)) else (),
                   str(e[F.E_STATE]) if isinstance(e.get(F.E_STATE), str) else None,
                   retired if isinstance(retired, bool) else None, _int(e.get(F.E_CREATED)))


def _threads(raw: Any) -> tuple[ThreadStack, ...]:
    out = []
    for t in raw if isinstance(raw, list) else []:
        if not isinstance(t, dict):
            continue
        frames = tuple(Frame(str(f[0])[:500], _int(f[1]) or 0, str(f[2])[:200], str(f[3])[:300])
                       for f in t.get(F.T_STACK) or [] if isinstance(f, list) and len(f) >= 4)
        out.append(ThreadStack(str(t.get(F.T_NAME, "?"))[:100], bool(t.get(F.T_MAIN)), frames))
    return tuple(out)


def read_hang(p: Path) -> HangDump:
    raw = read_bounded(p, F.MAX_HANG_BYTES, "hang dump")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InputError(p, "hang dump is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get(F.SCHEMA) != F.HANG_SCHEMA:
        schema = doc.get(F.SCHEMA) if isinstance(doc, dict) else None
        raise InputError(p, f"not a commprof hang dump (schema {schema!r})")
    rank = _rank_of(p, doc)
    if rank is None:
        raise InputError(p, "hang dump has no rank")
    fr: dict[str, Any] = doc[F.FR] if isinstance(doc.get(F.FR), dict) else {}
    entries = tuple(x for x in (_entry(e) for e in fr.get(F.FR_ENTRIES) or []) if x is not None)
    err = fr.get(F.FR_ERROR)
    return HangDump(rank=rank, path=str(p), source="commprof", reason=str(doc.get(F.REASON, ""))[:600],
                    step=_int(doc.get(F.STEP)), time_ns=_int(doc.get(F.TIME)), fr_error=str(err)[:600] if err else None,
                    entries=entries, threads=_threads(doc.get(F.THREADS)), world_size=_int(doc.get(F.WORLD_SIZE)),
                    env=env_record(doc.get(F.ENV)))


def read_pickle(p: Path) -> HangDump:
    """PyTorch's own Flight Recorder dump (NCCL's on a timeout): a pickle of plain containers, read without
    resolving any object."""
    doc = load_plain(p)
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise InputError(p, "not a Flight Recorder dump (no 'entries' list)")
    rank = _rank_of(p)
    if rank is None:
        raise InputError(p, "Flight Recorder dump without a rank in its name")
    entries = tuple(x for x in (_entry(F.convert_fr_entry(e)) for e in doc["entries"]
                                if isinstance(e, dict) and not e.get("is_p2p")) if x is not None)
    return HangDump(rank=rank, path=str(p), source="pytorch", reason="PyTorch's Flight Recorder dump", step=None,
                    time_ns=None, fr_error=None, entries=entries, threads=())


def read_fault(p: Path) -> Crash | None:
    """Python's faulthandler output; None when empty (no crash)."""
    try:
        text = p.read_text(errors="replace")[:1_000_000]
    except OSError as e:
        raise InputError(p, f"cannot be read ({e.strerror or e})") from None
    if not text.strip():
        return None
    rank = _rank_of(p)
    if rank is None:
        raise InputError(p, "crash file has no rank in its name")
    first = text.strip().splitlines()[0]
    error = first.split(":", 1)[1].strip() if first.startswith("Fatal Python error") else first[:200]
    # one block per thread, most recent call first: the crashing Python thread ("Current thread"), else the main
    # thread (its outermost frame is the module's), else the last
    blocks: list[tuple[bool, list[Frame]]] = []
    for line in text.splitlines():
        if line.startswith(("Thread 0x", "Current thread 0x")):
            blocks.append((line.startswith("Current"), []))
            continue
        m = _FAULT_FRAME.match(line)
        if m and blocks:
            blocks[-1][1].append(Frame(m.group(1), int(m.group(2)), m.group(3), ""))
    blocks = [b for b in blocks if b[1]]
    chosen = next((b for b in blocks if b[0]), None) or next((b for b in blocks if b[1][-1].function == "<module>"),
                                                             None) or (blocks[-1] if blocks else (False, []))
    frames = chosen[1]
    return Crash(rank, str(p), error, tuple(reversed(frames)))


def read_rollups(p: Path, warnings: list[str]) -> MonitorRank | None:
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise InputError(p, f"cannot be read ({e.strerror or e})") from None
    steps: list[MonitorStep] = []
    rollups: list[int] = []
    colls: dict[tuple[str, str], list[Any]] = {}
    rank = world = backend = None
    lost = 0
    env: dict[str, str] | None = None
    closed = False
    for n, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            d = orjson.loads(line) if len(line) <= F.MAX_LINE_BYTES else None
        except orjson.JSONDecodeError:
            d = None
        if not isinstance(d, dict) or d.get(F.SCHEMA) != F.MONITOR_SCHEMA:
            warnings.append(f"{p}: line {n} is not a complete monitor rollup; skipped")
            continue
        rank = _rank_of(p, d) if rank is None else rank
        world = _int(d.get(F.WORLD_SIZE)) or world
        backend = d[F.BACKEND] if isinstance(d.get(F.BACKEND), str) else backend
        lost += _int(d.get(F.FR_LOST)) or 0
        closed = d.get(F.CLOSED) is True  # the last line says how the block was left
        recorded = env_record(d.get(F.ENV))
        env = recorded if recorded is not None else env  # an empty record is a record: nothing of note set
        got = [MonitorStep(s[0], s[1], s[2]) for s in d.get(F.STEPS) or []
               if isinstance(s, list) and len(s) == 3 and all(_int(x) is not None for x in s)]
        steps += got
        rollups += [max(s.step for s in got) + 1] if got else []  # the monitor rolled this line up during that step
        for c in d.get(F.COLLECTIVES) or []:
            if not isinstance(c, dict):
                continue
            key = (str(c.get(F.C_OP, "?"))[:100], str(c.get(F.C_PG, ""))[:100])
            acc = colls.setdefault(key, [0, 0, []])
            acc[0] += _int(c.get(F.C_COUNT)) or 0
            acc[1] += _int(c.get(F.C_BYTES)) or 0
            acc[2] += [Issue(i[0], i[1], float(i[2])) for i in c.get(F.C_ISSUES) or []
                       if isinstance(i, list) and len(i) == 3 and _int(i[0]) is not None and _int(i[1]) is not None
                       and isinstance(i[2], (int, float)) and not isinstance(i[2], bool)]
    if rank is None:
        return None
    return MonitorRank(rank, str(p), world, backend, tuple(sorted(steps)),
                       tuple(RollupCollective(k[0], k[1], v[0], v[1], tuple(v[2])) for k, v in sorted(colls.items())),
                       lost, env=env, closed=closed, rollups=tuple(sorted(rollups)))


def read_monitor(path: str | Path) -> MonitorRun:
    """Every monitor file in the folder."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(root, "no such folder")
    warnings: list[str] = []
    ranks, hangs, crashes = [], [], []
    files = sorted(p for p in root.iterdir() if p.is_file() and _kind(p))
    for p in files:
        try:
            kind = _kind(p)
            if kind == "monitor":
                r = read_rollups(p, warnings)
                if r is not None:
                    ranks.append(r)
                elif p.stat().st_size:
                    warnings.append(f"{p}: no complete rollup line; skipped")
            elif kind == "hang":
                hangs.append(read_hang(p))
            elif kind == "pickle":
                hangs.append(read_pickle(p))
            else:
                crash = read_fault(p)
                if crash is not None:
                    crashes.append(crash)
        except InputError as e:
            warnings.append(f"{e}; skipped")
    if files and not (ranks or hangs or crashes) and any(_kind(p) != "fault" and p.stat().st_size for p in files):
        raise InputError(root, f"none of its {len(files)} monitor files can be read ({warnings[0]})")
    return MonitorRun(str(root), tuple(ranks), tuple(hangs), tuple(crashes), tuple(warnings))
