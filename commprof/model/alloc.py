"""The device allocator as a trace records it: its runtime calls (``cudaMalloc``, ``cudaFree``, pinned host
allocations, device-wide synchronisations), the ``[memory]`` events of each profiled step, and the named CPU
ranges the memory analyses read (the optimizer's step, ``empty_cache``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# what a runtime call does to memory (``AllocCalls.kind``)
MALLOC, FREE, HOST_ALLOC, HOST_FREE, DEVICE_SYNC = "malloc", "free", "host_alloc", "host_free", "device_sync"
# named CPU ranges (``Mark.kind``)
OPTIMIZER_STEP, EMPTY_CACHE = "optimizer_step", "empty_cache"
DDP_FORWARD, DDP_REDUCER = "ddp_forward", "ddp_reducer"


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocCalls:
    """The allocator's runtime calls on one rank, in time order."""

    start_ns: np.ndarray  # int64
    end_ns: np.ndarray  # int64
    kind: tuple[str, ...]  # MALLOC, FREE, HOST_ALLOC, HOST_FREE or DEVICE_SYNC
    step: np.ndarray  # int64, -1 outside every step

    def __len__(self) -> int:
        return int(self.start_ns.shape[0])


@dataclass(frozen=True, slots=True, kw_only=True)
class StepAllocs:
    """One device's ``[memory]`` events inside one profiled step."""

    device: str  # "cuda:0", "cpu:-1"
    step: int
    allocs: int
    frees: int
    alloc_bytes: int
    size_counts: tuple[tuple[int, int], ...]  # (block bytes, blocks of that size allocated in the step)
    peak_bytes: int  # the most allocated during the step (CPU: live tensor bytes, reader/memline.py)
    start_bytes: int  # allocated when the step began


@dataclass(frozen=True, slots=True, kw_only=True)
class Mark:
    """A named CPU range: the optimizer's step (``Optimizer.step#Adam.step``: ``detail`` "Adam"), a call of
    ``torch.cuda.empty_cache`` (a Python function event, traces made with ``with_stack=True``) of DDP's forward
    (``DistributedDataParallel.forward``: the micro-batches of a step), or an operator of DDP's reducer (``...reducer::
    copy_bucket_to_grad``: the work of a gradient synchronization beside its transfers)."""

    kind: str
    detail: str
    start_ns: int
    end_ns: int
