"""The size of each step's inputs: a forward pre-hook on the traced model counts the elements of the tensors its
calls receive (positional and keyword arguments, and tensors one level inside a list, tuple or mapping), summed over
the step's calls (micro-batches, evaluation passes).  It reads shapes only: no copy, no synchronization, nothing the
model computes changes, and it never raises into training.  The analysis tells the run's noise from its data with
it (``analysis.uncertainty.inputwork``): a batch of longer sequences is work, not a disturbance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def _elems(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (list, tuple)):
        return sum(v.numel() for v in value if isinstance(v, torch.Tensor))
    if isinstance(value, Mapping):  # a dict, or a batch that is one (Hugging Face's BatchEncoding)
        return sum(v.numel() for v in value.values() if isinstance(v, torch.Tensor))
    return 0


class InputCounter:
    """Counts the elements of the model's inputs per step (``take`` at each step's end); inert where the model
    takes no hooks."""

    def __init__(self, model: Any) -> None:
        self._elems = 0
        self._calls = 0
        self._handle: Any = None
        register = getattr(model, "register_forward_pre_hook", None)
        if register is None:
            return
        try:
            self._handle = register(self._count, with_kwargs=True)
        except Exception:  # a module that refuses hooks is traced without its input sizes
            self._handle = None

    def _count(self, _module: Any, args: tuple, kwargs: dict) -> None:
        try:
            self._elems += sum(_elems(a) for a in args) + sum(_elems(v) for v in kwargs.values())
            self._calls += 1
        except Exception:
            pass
        return None

    def take(self) -> int | None:
        """The step's input elements (None: no forward call was seen, or no hook), and a fresh count."""
        out = self._elems if self._handle is not None and self._calls else None
        self._elems = self._calls = 0
        return out

    def remove(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
