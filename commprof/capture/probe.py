"""The capture's rate probe: what the advisor's replays cost on this machine, measured once at trace start.

A trace shows what the traced run did; a what-if needs the cost of operations the run did not do (PowerSGD's
thin matrix products, a fresh bucket-sized copy).  Their speed depends on the CPU or GPU, its BLAS and the
memory allocator far more than on bytes or flops (measured: Q = Mᵀ P takes four times P = M Q on an AMD EPYC
with the same shapes, the same on an Intel Xeon), so they are measured here, on the rank's own device, with
the model's own gradient shapes, and written to the sidecar (``rates``):

- ``pass_bps``: bytes per second of an in-place pass over a bucket (``add_``);
- ``fresh_bps``: of an element-wise operator writing a fresh bucket-sized tensor (``clone``, ``a - b``):
  the first touch of new pages costs several times an in-place pass on some machines;
- ``products``: per compressible gradient shape (n x m) and PowerSGD rank r in 1, 2, 4, the time of
  P = M Q, Q = Mᵀ P and M = P Qᵀ as torch's ``powerSGD_hook`` calls them (``bmm`` on 1 x n x m views), each
  over as many distinct matrices as the hook's working set holds: in the hook the matrices are cold, and a
  product over a matrix in cache measured half the time;
- ``orthogonalize``: of the n x r factor (``linalg.qr``).

The probe uses its own tensors (filled with constants: no random numbers, the RNG state is untouched), frees
them, and never raises: a failure leaves the rates out with a warning.  It takes 1.7-3.1 s on a
2-core CPU host for the README demo's and the netns benchmarks' models (``wall_ms`` records it); the shapes left
after ``BUDGET_S`` are scaled from the nearest measured one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from ..formats import sidecar as F
from ..model import MQ, MTP, PQT

RANKS = (1, 2, 4)
MAX_SHAPES = 6  # the distinct gradient shapes probed, largest total size first
MIN_RATIO = 2.0  # PowerSGD's min_compression_rate: shapes it would not compress are not probed
LIMIT_BYTES = {"cpu": 128 << 20, "cuda": 256 << 20}  # the bucket-sized buffers: at most this many bytes
REPEATS = 3  # timed runs after one warm-up; the median is kept
BUDGET_S = 3.0  # no further shapes are probed after this long


def _products(what: str, mats: list[torch.Tensor], p: torch.Tensor, q: torch.Tensor) -> None:
    """One of the hook's products over every matrix, as torch's powerSGD_hook calls it."""
    for x in mats:
        if what == MQ:
            torch.bmm(x, q, out=p)
        elif what == MTP:
            torch.bmm(x.transpose(1, 2), p, out=q)
        else:
            torch.bmm(p, q.transpose(1, 2), out=x)


def _timer(device: torch.device) -> Callable[[Callable[[], Any]], float]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def time_ns(fn: Callable[[], Any]) -> float:
        fn()
        sync()
        runs = []
        for _ in range(REPEATS):
            t0 = time.perf_counter_ns()
            fn()
            sync()
            runs.append(time.perf_counter_ns() - t0)
        runs.sort()
        return float(runs[len(runs) // 2])
    return time_ns


def _shapes(params: list[tuple[tuple[int, ...], torch.dtype]]) -> list[tuple[int, int, torch.dtype]]:
    """The distinct (n, m) views PowerSGD compresses at rank 1 or more, largest total bytes first."""
    total: dict[tuple[int, int, torch.dtype], int] = {}
    for shape, dtype in params:
        if len(shape) < 2:
            continue
        n = int(shape[0])
        numel = 1
        for d in shape:
            numel *= int(d)
        if n == 0 or numel == 0:
            continue
        m = numel // n
        if (n + m) * MIN_RATIO < n * m:
            total[(n, m, dtype)] = total.get((n, m, dtype), 0) + numel
    return sorted(total, key=lambda k: -total[k])[:MAX_SHAPES]


def measure(model: Any) -> dict[str, Any]:
    """Measure the rates on the device of ``model``'s parameters (a DDP model or any module)."""
    with torch.no_grad():
        return _measure(model)


def _measure(model: Any) -> dict[str, Any]:
    t_start = time.perf_counter_ns()
    module = getattr(model, "module", model)
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return {}
    device, dtype = params[0].device, params[0].dtype
    time_ns = _timer(device)
    kind = "cuda" if device.type == "cuda" else "cpu"
    grad_bytes = sum(p.numel() * p.element_size() for p in params)
    numel = max(min(grad_bytes, LIMIT_BYTES[kind]) // max(params[0].element_size(), 1), 1)
    a = torch.full((numel,), 0.5, device=device, dtype=dtype)
    b = torch.full((numel,), 0.25, device=device, dtype=dtype)
    nbytes = numel * a.element_size()
    pass_ns = time_ns(partial(torch.Tensor.add_, a, b))
    fresh_ns = (time_ns(partial(torch.clone, a)) + time_ns(partial(torch.sub, a, b))) / 2
    a = b = torch.empty(0)  # free the buffers before the matrices
    products: list[list[Any]] = []
    orth: list[list[Any]] = []
    for n, m, dt in _shapes([(tuple(p.shape), p.dtype) for p in params]):
        if (time.perf_counter_ns() - t_start) / 1e9 > BUDGET_S:
            break  # the shapes left are scaled from the nearest measured one
        # in the hook every matrix is cold (backward, the error feedback and the bucket's copy came between): the
        # products run over as many distinct matrices as the hook's working set (about 3 x the gradients) holds
        elem = torch.empty(0, dtype=dt).element_size()
        k = max(1, min(3 * grad_bytes, LIMIT_BYTES[kind]) // max(n * m * elem, 1))
        mats = [torch.full((1, n, m), 0.5, device=device, dtype=dt) for _ in range(int(k))]
        for r in RANKS:
            r_ = min(n, m, r)
            pf = torch.full((1, n, r_), 0.5, device=device, dtype=dt)
            qf = torch.full((1, m, r_), 0.5, device=device, dtype=dt)
            for what in (MQ, MTP, PQT):
                products.append([what, n, m, r, time_ns(partial(_products, what, mats, pf, qf)) / k])
            orth.append([n, r, time_ns(partial(torch.linalg.qr, pf.float()))])
            orth.append([m, r, time_ns(partial(torch.linalg.qr, qf.float()))])
        del mats
    return {F.R_DEVICE: kind, F.R_BUFFER_BYTES: int(nbytes),
            F.R_PASS_BPS: nbytes / pass_ns * 1e9 if pass_ns else None,
            F.R_FRESH_BPS: nbytes / fresh_ns * 1e9 if fresh_ns else None, F.R_PRODUCTS: products,
            F.R_ORTHOGONALIZE: orth, F.R_WALL_MS: (time.perf_counter_ns() - t_start) / 1e6}
