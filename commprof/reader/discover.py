"""A folder (or one file) -> trace files and sidecars, and the rank each claims."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..formats.files import NOT_TRACE_SUFFIXES, NOT_TRACES, SIDECAR_SUFFIX, sidecar_name_for

_RANK_PATTERNS = (
    re.compile(r"rank[-_]?(\d+)", re.IGNORECASE),
    re.compile(r"worker[-_]?(\d+)", re.IGNORECASE),
    re.compile(r"(\d+)(?:\.pt\.trace)?\.json(?:\.gz)?$"),
)


@dataclass(frozen=True, slots=True)
class Found:
    traces: tuple[Path, ...]
    sidecars: tuple[Path, ...]
    not_regular: tuple[Path, ...] = ()  # trace-like names that are dangling links, FIFOs, sockets


# torchtitan writes one folder per profiled step: profile_trace/iteration_10/rank0_trace.json
_CYCLE_FOLDER = re.compile(r"^(?:iteration|iter|step)[-_]?\d+$", re.IGNORECASE)
_MAX_RANK_DIGITS = 7  # tensorboard_trace_handler's names end in a time in ms (host_pid.1700000000123.pt.trace.json)


def rank_from_name(path: Path) -> int | None:
    """``rank3.pt.trace.json.gz``, ``worker5_step_12.…json``, ``megatron_kineto_3.json.gz`` -> rank; a number as
    long as a time (``host_123.1700000000123.pt.trace.json``) is none."""
    for pat in _RANK_PATTERNS:
        m = pat.search(path.name)
        if m and len(m.group(1)) <= _MAX_RANK_DIGITS:
            return int(m.group(1))
    return None


def is_cycle_folder(name: str) -> bool:
    """A folder of one profiled window's traces, as torchtitan writes them (``iteration_10``)."""
    return bool(_CYCLE_FOLDER.match(name))


def is_trace_name(name: str) -> bool:
    if name in NOT_TRACES or name.endswith(NOT_TRACE_SUFFIXES) or name.startswith("."):
        return False
    return name.endswith(".json") or name.endswith(".json.gz")


def discover(path: str | Path) -> Found:
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such file or folder")
    if p.is_file():
        if p.name.endswith(SIDECAR_SUFFIX):
            raise InputError(p, "is a commprof sidecar, not a trace; pass the folder or the trace file")
        side = p.with_name(sidecar_name_for(p.name))
        return Found((p,), (side,) if side.is_file() else ())
    if not p.is_dir():
        raise InputError(p, "is neither a file nor a folder")
    try:
        entries = sorted(p.iterdir())
    except PermissionError:
        raise InputError(p, "permission denied: the folder cannot be listed") from None
    for sub in [e for e in entries if e.is_dir() and is_cycle_folder(e.name)]:
        try:
            entries.extend(sorted(sub.iterdir()))
        except PermissionError:
            raise InputError(sub, "permission denied: the folder cannot be listed") from None
    traces = tuple(e for e in entries if e.is_file() and is_trace_name(e.name))
    sidecars = tuple(e for e in entries if e.is_file() and e.name.endswith(SIDECAR_SUFFIX))
    odd = tuple(e for e in entries if is_trace_name(e.name) and not e.is_file() and not e.is_dir())
    if not traces:
        if sidecars:
            raise InputError(p, f"has {len(sidecars)} commprof sidecar(s) but no trace files "
                                "(*.json / *.json.gz); the Kineto traces are missing")
        raise InputError(p, "no trace files (*.json or *.json.gz) in this folder")
    return Found(traces, sidecars, odd)
