"""``commprof.trace()``'s options, declared once: ``commprof.trace`` and ``commprof.capture.session.trace`` take
their signature from ``TraceOptions`` (``signature_of``), the session reads the options from it, and docs/capture.md
lists them as generated from this file (``tests/unit/test_options.py`` checks that the list is current).

Imports no torch: ``import commprof`` reads this module.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

SCHEDULE = ("wait", "warmup", "active", "repeat", "skip_first")  # torch.profiler.schedule's arguments


@dataclass(frozen=True, slots=True)
class TraceOptions:
    """What ``commprof.trace()`` records, and where."""

    out_dir: str | os.PathLike = "traces"
    """The folder each rank writes its two files into (created if missing; an earlier run's files there are moved
    aside, never overwritten)."""
    _: KW_ONLY
    model: Any = None
    """The training model: a DistributedDataParallel (its buckets are recorded) or an FSDP2 root (its settings are
    recorded), either as given to ``torch.compile`` or as it returned it; without it commprof still traces, and the
    analysis uses the trace alone."""
    wait: int = 1
    """torch.profiler schedule: steps skipped at the start of each cycle."""
    warmup: int = 1
    """torch.profiler schedule: steps traced but discarded after ``wait`` (with the defaults, steps 2-4 are
    recorded)."""
    active: int = 3
    """torch.profiler schedule: steps recorded per cycle (at least 1)."""
    repeat: int = 1
    """torch.profiler schedule: cycles of wait + warmup + active steps (0: as long as the loop runs); the trace is
    written again after each one."""
    skip_first: int = 0
    """torch.profiler schedule: steps skipped once before the first cycle."""
    record_shapes: bool = True
    """Record the operators' input shapes (the bytes of the collectives whose trace records carry no size)."""
    profile_memory: bool = False
    """Record the allocator's events (the report's memory section)."""
    with_stack: bool = False
    """Record the Python stacks of the operators (a larger trace)."""
    comm_hook: Callable | None = None
    """Your own DDP comm hook: DDP accepts only one, so commprof registers its recorder and calls yours (needs
    ``model``). Yours is checked as DDP checks a hook it registers: one torch refuses (``bf16_compress_hook``
    without NCCL 2.10+) raises torch's own error, as without commprof."""
    comm_state: Any = None
    """The state your ``comm_hook`` is called with."""
    activities: Iterable[Any] | None = None
    """torch.profiler activities (None: CPU, plus CUDA when a GPU is present)."""
    modules: Any = None
    """A module, whose children are recorded, or a list / dict of modules: per call forward and backward times and
    output bytes, for pipeline partitioning."""
    probe: bool = True
    """With a DDP model: measure, once at the start, the rates the advisor's what-ifs need on this machine, such as
    PowerSGD's matrix products (1.7-3.1 s on a 2-core CPU host for the README demo's model and the netns
    benchmarks' 34 MB one; ``rates.wall_ms`` in the sidecar; see ``commprof.capture.probe``)."""

    def __post_init__(self) -> None:
        if min(self.wait, self.warmup, self.repeat, self.skip_first) < 0 or self.active < 1:
            raise ValueError("wait, warmup, repeat, skip_first must be >= 0 and active >= 1")
        if self.comm_hook is not None and self.model is None:
            raise ValueError("comm_hook= needs model= (the DDP model to register it on)")

    def schedule(self) -> dict[str, int]:
        """The torch.profiler schedule's arguments, by name."""
        return {k: getattr(self, k) for k in SCHEDULE}


def compiled_inner(model: Any) -> Any:
    """The module ``torch.compile`` wrapped, where ``model`` is what it returned (an ``OptimizedModule`` keeps the
    module it compiles as ``_orig_mod``): DDP's buckets and FSDP2's settings are that module's."""
    for _ in range(8):  # a compiled module compiled again wraps the wrapper
        if type(model).__name__ != "OptimizedModule" or getattr(model, "_orig_mod", None) is None:
            break
        model = model._orig_mod
    return model


def signature_of(record: Callable[P, Any]) -> Callable[[Callable[..., R]], Callable[P, R]]:
    """A decorator that gives a function the signature of ``record`` (for type checkers, IDEs and ``help()``): the
    function takes the record's fields as its arguments and builds the record from them."""
    def wrap(f: Callable[..., R]) -> Callable[P, R]:
        f.__signature__ = inspect.signature(record).replace(  # type: ignore[attr-defined]
            return_annotation=inspect.signature(f).return_annotation)
        return f
    return wrap
