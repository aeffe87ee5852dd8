"""Interval lanes kept on disk: a ``SpilledLane`` reads like a ``Lane`` and memory-maps its columns on each read.

``load()`` spills each rank's large lanes (one entry per kernel or operator: most of a parsed rank) into a
temporary folder for runs too large to keep every rank's intervals in the cross-rank step's memory
(``commprof.engine.spill``).
"""

from __future__ import annotations

import shutil
import weakref
from typing import TYPE_CHECKING

from .trace import Lane

if TYPE_CHECKING:
    import numpy as np


class SpillDir:
    """A temporary folder of spilled arrays, removed when the last object that reads from it is gone (or at
    exit).  ``load()`` makes one per run it spills."""

    __slots__ = ("path", "_fin", "__weakref__")

    def __init__(self, path: str) -> None:
        self.path = path
        self._fin = weakref.finalize(self, shutil.rmtree, path, True)


class SpilledArray:
    """An int64 array kept in an ``.npy`` file and memory-mapped on each ``get()``: only the pages a caller
    touches are read, and they are released with the array it got.  Pickles by reference to its file (the
    map step hands it to the cross-rank step so), valid on the same machine while its ``SpillDir`` lives."""

    __slots__ = ("path", "shape", "owner")

    def __init__(self, path: str, shape: tuple[int, ...], owner: SpillDir | None = None) -> None:
        self.path = path
        self.shape = shape
        self.owner = owner

    def get(self) -> np.ndarray:
        import numpy as np

        return np.asarray(np.load(self.path, mmap_mode="r"))

    def __reduce__(self):
        return SpilledArray, (self.path, self.shape)


def _column(i: int):
    def get(self: SpilledLane) -> np.ndarray:
        return self.data.get()[i]
    return property(get)


class SpilledLane(Lane):
    """A ``Lane`` whose columns live in a ``SpilledArray`` (4 x n: start, end, step, launch).  Reads like a
    ``Lane``."""

    __slots__ = ("data",)
    data: SpilledArray

    def __init__(self, data: SpilledArray) -> None:
        object.__setattr__(self, "data", data)

    start_ns = _column(0)  # type: ignore[assignment]
    end_ns = _column(1)  # type: ignore[assignment]
    step = _column(2)  # type: ignore[assignment]
    launch_ns = _column(3)  # type: ignore[assignment]

    def __len__(self) -> int:
        return int(self.data.shape[1])

    def __repr__(self) -> str:
        return f"SpilledLane({len(self)} intervals in {self.data.path})"

    def __reduce__(self):
        return SpilledLane, (self.data,)
