"""PyTorch's Flight Recorder, read from inside the process: its ring buffer of every collective per process
group (gloo and NCCL in torch 2.13), through a private API used behind a check, with one clear message where it
is missing.  Entries come back in commprof's own shape (``commprof.formats.monitor``)."""

from __future__ import annotations

import os
from typing import Any

import orjson

from ..formats import monitor as F

BUFFER_ENV = ("TORCH_FR_BUFFER_SIZE", "TORCH_NCCL_TRACE_BUFFER_SIZE")
DEFAULT_BUFFER = "2000"


def _dumper() -> Any:
    try:
        from torch._C._distributed_c10d import _dump_fr_trace_json  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _dump_fr_trace_json


def unavailable() -> str | None:
    """None where this torch can dump its Flight Recorder, else why not."""
    if _dumper() is None:
        import torch

        return (f"torch {torch.__version__} has no Flight Recorder dump (torch._C._distributed_c10d."
                "_dump_fr_trace_json); hang dumps will hold the threads' stacks only")
    return None


def switch_on() -> str | None:
    """Turn the Flight Recorder on for process groups created from now on, where the user has not configured it;
    returns what was done, for the log."""
    if any(os.environ.get(k) for k in BUFFER_ENV):
        return None
    import torch

    major, minor = (int(x) for x in torch.__version__.split(".")[:2])
    key = BUFFER_ENV[0] if (major, minor) >= (2, 6) else BUFFER_ENV[1]  # the NCCL name before torch 2.6
    os.environ[key] = DEFAULT_BUFFER
    return f"turned on PyTorch's Flight Recorder ({key}={DEFAULT_BUFFER}) for process groups created from now on"


def entries(only_active: bool = False) -> list[dict[str, Any]]:
    """The recorder's entries now (oldest first), converted; raises RuntimeError when it cannot be read."""
    dump = _dumper()
    if dump is None:
        raise RuntimeError(unavailable() or "no Flight Recorder")
    doc = orjson.loads(dump(True, only_active))
    raw = doc.get("entries") if isinstance(doc, dict) else None
    return [F.convert_fr_entry(e) for e in raw or [] if isinstance(e, dict) and not e.get("is_p2p")]
