"""Thin matrix products in a CPU trace: ``aten::bmm`` of a matrix with a rank-r factor, as torch's
``powerSGD_hook`` runs them (P = M Q, Q = Mᵀ P, M = P Qᵀ on 1 x n x m views).  Their durations are the
run's own cost of PowerSGD's matrix work; recognised from the operator's Input Dims and Input Strides
(without strides, P = M Q and Q = Mᵀ P of a square matrix look alike, so such events are not used)."""

from __future__ import annotations

from typing import Any

from ..formats import keys as K
from ..model import MQ, MTP, PQT, ThinProduct
from .decode.events import args_of

MAX_RANK = 16  # a factor with at most this many columns is "thin" (attention heads have 32 or more)
MIN_MATRIX_ELEMENTS = 1 << 16  # smaller products measure per-operator overhead, not the matrix


def _dims3(v: Any) -> list[int] | None:
    if isinstance(v, list) and len(v) == 3 and all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                                   for d in v):
        return v
    return None


def classify(args: dict[str, Any]) -> tuple[str, int, int, int, int] | None:
    """(kind, n, m, r, batch) of one bmm's args, or None when it is not a thin product of a large matrix."""
    dims = args.get(K.A_INPUT_DIMS)
    strides = args.get(K.A_INPUT_STRIDES)
    if not isinstance(dims, list) or len(dims) < 2 or not isinstance(strides, list) or len(strides) < 2:
        return None
    a, b, sa, sb = _dims3(dims[0]), _dims3(dims[1]), _dims3(strides[0]), _dims3(strides[1])
    if a is None or b is None or sa is None or sb is None or a[0] != b[0] or a[2] != b[1]:
        return None
    batch, x, y, z = a[0], a[1], a[2], b[2]
    if y <= MAX_RANK and x * z >= MIN_MATRIX_ELEMENTS:
        return PQT, x, z, y, batch  # [n, r] x [r, m]: the n x m matrix is written
    if z <= MAX_RANK and x * y >= MIN_MATRIX_ELEMENTS:
        if sa[1] == 1 and sa[2] != 1:
            return MTP, y, x, z, batch  # a transposed view of the n x m matrix: [m, n] x [n, r]
        if sa[2] == 1:
            return MQ, x, y, z, batch
    return None


def thin_products(raws: list[Any], durations: list[int]) -> list[ThinProduct]:
    """The thin products among ``aten::bmm`` events (raw args and durations), ns per matrix."""
    out = []
    for raw, ns in zip(raws, durations, strict=True):
        c = classify(args_of(raw))
        if c is not None and ns > 0:
            kind, n, m, r, batch = c
            out.append(ThinProduct(kind, n, m, r, ns / batch))
    return out
