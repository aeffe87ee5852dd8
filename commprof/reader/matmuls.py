"""The matrix work of each profiled step: the floating-point operations of the matrix products a rank ran, from the
operators' ``Input Dims`` (``record_shapes``).  The measure of how much work a rank was given, whatever its speed:
ranks of one data-parallel job given equal shards run the same products; one given a larger batch, longer sequences,
a larger stage or more routed tokens runs more (``crossrank.work``).

Counted: ``aten::mm``, ``addmm``, ``bmm``, ``baddbmm``, ``addbmm``, ``_addmm_activation`` and ``_scaled_mm``, the
products every linear layer, attention score and their backward passes end in, on CPU and GPU traces alike (the CPU
operator that launches a kernel records its shapes); grouped products (``_grouped_mm``, ``_scaled_grouped_mm``: a
mixture-of-experts layer's); convolutions and fused attention (``convattn``).  A product nested in another counted
one on the same thread is counted once (the outer).  Not counted: products fused into custom or generated kernels
(Triton; torch.compile's graphs count where they call these operators), packed variable-length attention, and
convolutions whose strides the trace did not record."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..formats import keys as K
from .convattn import CONV_ATTN_OPS, conv_attn_flops

# the Input Dims entry of the left matrix: the products with a bias or accumulator take it first
_LEFT = {"aten::mm": 0, "aten::bmm": 0, "aten::_scaled_mm": 0, "aten::_scaled_mm_v2": 0, "aten::addmm": 1,
         "aten::baddbmm": 1, "aten::addbmm": 1, "aten::_addmm_activation": 1}
# grouped products (mixture-of-experts layers: one product per expert over its tokens' rows, ``offs`` cutting them)
_GROUPED = frozenset({"aten::_grouped_mm", "aten::_scaled_grouped_mm", "aten::_scaled_grouped_mm_v2"})
MATMUL_OPS = frozenset(_LEFT) | _GROUPED | CONV_ATTN_OPS


def _dims(v: Any, n: int) -> list[int] | None:
    if isinstance(v, list) and len(v) == n and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                   for d in v):
        return v
    return None


def flops(name: str, args: dict[str, Any]) -> float | None:
    """Floating-point operations of one product (2 per multiply-add), or None where its shapes are not recorded or
    do not make a product."""
    dims = args.get(K.A_INPUT_DIMS)
    i = _LEFT.get(name)
    if name in CONV_ATTN_OPS:
        return conv_attn_flops(name, dims, args.get(K.A_CONCRETE))
    if name in _GROUPED:
        return _grouped(dims)
    if i is None or not isinstance(dims, list) or len(dims) < i + 2:
        return None
    a, b = dims[i], dims[i + 1]
    if (a2 := _dims(a, 2)) is not None and (b2 := _dims(b, 2)) is not None and a2[1] == b2[0]:
        return 2.0 * a2[0] * a2[1] * b2[1]
    if (a3 := _dims(a, 3)) is not None and (b3 := _dims(b, 3)) is not None and a3[0] == b3[0] and a3[2] == b3[1]:
        return 2.0 * a3[0] * a3[1] * a3[2] * b3[2]
    return None


def _grouped(dims: Any) -> float | None:
    """A grouped product's operations: every group's rows (or, 2-D by 2-D, its slice of the inner dimension) run
    once, so the total is that of one product over the stacked groups; a 3-D left by a 2-D right multiplies each
    group's matrix by its own columns of the right one."""
    if not isinstance(dims, list) or len(dims) < 2:
        return None
    a, b = dims[0], dims[1]
    if (a2 := _dims(a, 2)) is not None and (b3 := _dims(b, 3)) is not None and a2[1] == b3[1]:
        return 2.0 * a2[0] * a2[1] * b3[2]
    if (a2 := _dims(a, 2)) is not None and (b2 := _dims(b, 2)) is not None and a2[1] == b2[0]:
        return 2.0 * a2[0] * a2[1] * b2[1]
    if (a3 := _dims(a, 3)) is not None and (b3 := _dims(b, 3)) is not None and a3[0] == b3[0] and a3[2] == b3[1]:
        return 2.0 * a3[0] * a3[1] * a3[2] * b3[2]
    if (a3 := _dims(a, 3)) is not None and (b2 := _dims(b, 2)) is not None and a3[2] == b2[0]:
        return 2.0 * a3[1] * a3[2] * b2[1]
    return None


def counted(records: Sequence[tuple[int, int, Any, str]],
            shapes: Sequence[dict[str, Any]]) -> list[tuple[int, int, Any, float]]:
    """(start, end, thread, FLOPs) of each product (``records``: start, end, thread, name; ``shapes``: its args, in
    the same order) whose shapes make a product."""
    out = []
    for (start, end, tid, name), args in zip(records, shapes, strict=True):
        f = flops(name, args)
        if f is not None:
            out.append((start, end, tid, f))
    return out


def per_step(products: Sequence[tuple[int, int, Any, float]],
             step_of: Callable[[int], int]) -> tuple[tuple[int, float], ...]:
    """(step number, FLOPs) of every profiled step that ran a counted product, in step order.  ``products``: each
    product's (start ns, end ns, thread, FLOPs) (``counted``); ``step_of``: the profiled step a time falls in (-1:
    none).  A product that starts inside another one on its thread is part of it."""
    by_thread: dict[Any, list[tuple[int, int, Any, float]]] = {}
    for rec in products:
        by_thread.setdefault(rec[2], []).append(rec)
    total: dict[int, float] = {}
    for recs in by_thread.values():
        recs.sort(key=lambda r: (r[0], -r[1]))
        open_end = -1  # the end of the outermost product counted last on this thread
        for start, end, _tid, f in recs:
            if start < open_end:
                continue  # inside a product already counted
            open_end = end
            step = step_of(start)
            if step >= 0:
                total[step] = total.get(step, 0.0) + f
    return tuple(sorted(total.items()))
