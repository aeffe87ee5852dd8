"""Per-module forward and backward times and output bytes, for pipeline partitioning.

``commprof.trace(..., modules=...)`` registers forward pre/post hooks and full backward pre/post hooks on the
given modules; while the profiler records, each call gives one record: step, module name, forward start and
end, backward start and end (Unix ns, the trace's clock), and the bytes of the module's output (the
activation a pipeline stage boundary after it would send).  The hooks change no value: forward hooks return
nothing and the backward hooks only read the clock.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from typing import Any

import torch

from ..formats import sidecar as F
from .options import compiled_inner

_now = time.time_ns


def _nbytes(out: Any) -> int:
    if isinstance(out, torch.Tensor):
        return int(out.numel() * out.element_size())
    if isinstance(out, (list, tuple)):
        return sum(_nbytes(o) for o in out)
    if isinstance(out, dict):
        return sum(_nbytes(o) for o in out.values())
    return 0


def named_modules(spec: Any) -> list[tuple[str, torch.nn.Module]]:
    """``modules=`` may be a module (its children; of the module ``torch.compile`` wrapped, where it is what
    torch.compile returned), a list of modules, or a dict name -> module."""
    if isinstance(spec, torch.nn.Module):
        return list(compiled_inner(spec).named_children())
    if isinstance(spec, dict):
        return [(str(k), v) for k, v in spec.items()]
    if isinstance(spec, Iterable):
        return [(str(i), m) for i, m in enumerate(spec)]
    raise TypeError("modules= takes a module (its children are recorded), a list of modules or a dict")


class ModuleRecorder:
    def __init__(self, spec: Any) -> None:
        self.modules = named_modules(spec)
        self.active = False
        self.step = 0
        self.calls: list[dict[str, Any]] = []
        self._open_fwd: dict[int, list[dict[str, Any]]] = {}
        self._open_bwd: dict[int, list[dict[str, Any]]] = {}
        self._handles: list[Any] = []

    def install(self) -> None:
        if self._handles:
            return
        # the first stage's input needs no gradient; torch then warns on every backward that the full
        # backward hook fires for the outputs only, which is what we want: silence exactly that warning
        warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients are computed")
        for name, m in self.modules:
            self._handles.append(m.register_forward_pre_hook(self._fwd_pre(name)))
            self._handles.append(m.register_forward_hook(self._fwd_post()))
            self._handles.append(m.register_full_backward_pre_hook(self._bwd_pre()))
            self._handles.append(m.register_full_backward_hook(self._bwd_post()))

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _fwd_pre(self, name: str):
        def hook(module, _inputs):
            if self.active:
                rec = {F.M_STEP: self.step, F.M_NAME: name, F.M_FWD_START: _now()}
                self._open_fwd.setdefault(id(module), []).append(rec)
        return hook

    def _fwd_post(self):
        def hook(module, _inputs, output):
            stack = self._open_fwd.get(id(module))
            if stack:
                rec = stack.pop()
                rec[F.M_FWD_END] = _now()
                rec[F.M_OUT_BYTES] = _nbytes(output)
                self.calls.append(rec)
                # backward runs in reverse order of the forwards: match this call with it later
                self._open_bwd.setdefault(id(module), []).append(rec)
        return hook

    def _bwd_pre(self):
        def hook(module, _grad_output):
            stack = self._open_bwd.get(id(module))
            if stack:
                stack[-1][F.M_BWD_START] = _now()
        return hook

    def _bwd_post(self):
        def hook(module, _grad_input, _grad_output):
            stack = self._open_bwd.get(id(module))
            if stack:
                rec = stack.pop()
                rec[F.M_BWD_END] = _now()
        return hook

    def end_step(self) -> None:
        self._open_fwd.clear()
        self._open_bwd.clear()
        self.step += 1
