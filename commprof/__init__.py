"""commprof: find, explain and fix the communication overhead of PyTorch distributed training.

Public API::

    with commprof.trace("traces/", model=ddp_model) as prof:   # capture (needs torch)
        ...
        prof.step()
    run = commprof.load("traces/")                             # typed model of every rank
    report = commprof.analyze(run)                             # numbers, findings

Importing commprof pulls in neither torch nor matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["InputError", "__version__", "analyze", "load", "trace"]

from .errors import InputError

if TYPE_CHECKING:
    from .analysis.report import Report
    from .capture.session import TraceSession
    from .model import Run


def trace(out_dir: Any = "traces", **kwargs: Any) -> TraceSession:
    """Trace a training loop; see ``commprof.capture.session.trace`` for the options."""
    from .capture.session import trace as _trace

    return _trace(out_dir, **kwargs)


def load(path: Any, **kwargs: Any) -> Run:
    """Load a folder of per-rank traces (and sidecars) into a ``Run``."""
    from .reader import load as _load

    return _load(path, **kwargs)


def analyze(run: Run, **kwargs: Any) -> Report:
    """Compute overlap, volumes, buckets and stragglers of a ``Run``."""
    from .analysis.report import analyze as _analyze

    return _analyze(run, **kwargs)
