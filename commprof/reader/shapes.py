"""Tensor sizes from the profiler's ``record_shapes`` args (``Input Dims``, ``Input type``)."""

from __future__ import annotations

from typing import Any

from ..formats import keys as K
from ..units import float_size


def numel_of_dims(dims: Any) -> int | None:
    """Elements of one ``Input Dims`` entry: a tensor ``[d0, d1]`` or a tensor list ``[[..], [..]]``."""
    if not isinstance(dims, list) or not dims:
        return None
    if all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
        n = 1
        for d in dims:
            n *= max(d, 0)
        return n
    if all(isinstance(d, list) for d in dims):
        parts = [numel_of_dims(d) for d in dims]
        vals = [p for p in parts if p is not None]
        return sum(vals) if vals else None
    return None


def numel_from_args(args: dict[str, Any]) -> int | None:
    """The larger of the first two tensors' elements (a collective's input and output).  A zero-dimensional tensor
    (``[]`` whose ``Input type`` is a dtype: a loss or a metric all-reduced as a scalar) holds one element; an
    empty entry of any other type (a tensor list, a scalar argument) none known."""
    dims = args.get(K.A_INPUT_DIMS)
    if not isinstance(dims, list):
        return None
    types = args.get(K.A_INPUT_TYPE)
    types = types if isinstance(types, list) else []
    vals = [n for n in (_numel(d, types[i] if i < len(types) else None) for i, d in enumerate(dims[:2]))
            if n is not None]
    return max(vals) if vals else None


def _numel(dims: Any, type_: Any) -> int | None:
    if dims == [] and isinstance(type_, str) and type_ not in ("", "TensorList", "Scalar", "ScalarList"):
        return 1
    return numel_of_dims(dims)


def first_type(args: dict[str, Any]) -> str | None:
    t = args.get(K.A_INPUT_TYPE)
    if isinstance(t, list) and t and isinstance(t[0], str) and t[0] not in ("", "TensorList", "Scalar"):
        return t[0]
    return None


def int_arg(args: dict[str, Any], key: str) -> int | None:
    v = args.get(key)
    if isinstance(v, bool):
        return None
    if isinstance(v, int) and 0 <= v < 2**62:
        return v
    if isinstance(v, str) and v.isdigit() and len(v) < 19:
        return int(v)
    return None


def tensor_bytes(args: dict[str, Any]) -> int | None:
    """Bytes of every floating-point tensor argument (Input Dims x Input type); None without shapes."""
    dims, types = args.get(K.A_INPUT_DIMS), args.get(K.A_INPUT_TYPE)
    if not isinstance(dims, list) or not isinstance(types, list):
        return None
    total = 0
    for d, t in zip(dims, types, strict=False):
        size = float_size(t) if isinstance(t, str) else None
        n = numel_of_dims(d) if size else None
        if size and n:
            total += n * size
    return total
