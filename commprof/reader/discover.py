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


def rank_from_name(path: Path) -> int | None:
    """``rank3.pt.trace.json.gz``, ``worker5_step_12.…json``, ``megatron_kineto_3.json.gz`` -> rank."""
    for pat in _RANK_PATTERNS:
        m = pat.search(path.name)
        if m:
            return int(m.group(1))
    return None


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
    traces = tuple(e for e in entries if e.is_file() and is_trace_name(e.name))
    sidecars = tuple(e for e in entries if e.is_file() and e.name.endswith(SIDECAR_SUFFIX))
    odd = tuple(e for e in entries if is_trace_name(e.name) and not e.is_file() and not e.is_dir())
    if not traces:
        if sidecars:
            raise InputError(p, f"has {len(sidecars)} commprof sidecar(s) but no trace files "
                                "(*.json / *.json.gz); the Kineto traces are missing")
        raise InputError(p, "no trace files (*.json or *.json.gz) in this folder")
    return Found(traces, sidecars, odd)
