"""The floating-point operations of convolutions and fused attention, from the operators' recorded shapes (``Input
Dims``) and, for a convolution's output size, its recorded strides and padding (``Concrete Inputs``, torch >= 2.x
with ``record_shapes``): the rest of the matrix work ``matmuls`` counts.  2 operations per multiply-add.

- ``aten::convolution`` (what conv1d/2d/3d and their transposes call): input ``[N, C, *in]``, weight
  ``[w0, w1, *k]`` (``[out, in / groups, ...]``; transposed ``[in, out / groups, ...]``): ``2 N w0 w1 prod(k)
  prod(out)``, ``out`` from stride, padding and dilation; a transposed convolution is the adjoint of the direct one
  from its output to its input, so ``prod(in)`` instead.  Without its concrete inputs: not counted.
- ``aten::convolution_backward``: grad_output, input and weight are all recorded, so no stride is needed (only the
  transposed flag: not counted without it): the same figure for each gradient its output mask asks (input, weight;
  two where the mask is not recorded).
- Scaled dot-product attention (the public operator and the fused kernels it picks, q ``[..., L, E]``,
  k ``[..., S, E]``, v ``[..., S, Ev]``): ``2 B L S (E + Ev)`` (the scores and their product with v, ``B`` the
  product of q's leading dims); its backward twice that (the gradients of q, k, v and the scores; a kernel that
  recomputes the scores does more).  The whole score matrix is counted, causal or not: ranks of one job use the
  same mask, and what this measures is a rank's work against its peers'."""

from __future__ import annotations

import json
import math
from typing import Any

CONV = "aten::convolution"
CONV_BACKWARD = "aten::convolution_backward"
_ATTN = frozenset({"aten::scaled_dot_product_attention", "aten::_scaled_dot_product_flash_attention_for_cpu",
                   "aten::_scaled_dot_product_flash_attention", "aten::_scaled_dot_product_efficient_attention",
                   "aten::_scaled_dot_product_cudnn_attention",
                   "aten::_scaled_dot_product_fused_attention_overrideable"})
# their backward kernels: grad_out, q, k, v first (the public operator has none: autograd calls these)
_ATTN_BACKWARD = frozenset({"aten::_scaled_dot_product_flash_attention_for_cpu_backward",
                            "aten::_scaled_dot_product_flash_attention_backward",
                            "aten::_scaled_dot_product_efficient_attention_backward",
                            "aten::_scaled_dot_product_cudnn_attention_backward",
                            "aten::_scaled_dot_product_fused_attention_overrideable_backward"})
CONV_ATTN_OPS = frozenset({CONV, CONV_BACKWARD}) | _ATTN | _ATTN_BACKWARD


def _shape(v: Any, least: int) -> list[int] | None:
    if isinstance(v, list) and len(v) >= least and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                       for d in v):
        return v
    return None


def _concrete(conc: Any, i: int) -> Any:
    """The ``i``-th concrete input, parsed ("[2, 2]" -> [2, 2], "True" -> True, "1" -> 1); None where absent."""
    if not isinstance(conc, list) or i >= len(conc) or not isinstance(conc[i], str):
        return None
    text = conc[i].strip()
    try:
        return json.loads(text.replace("True", "true").replace("False", "false"))
    except ValueError:
        return None


def _per_dim(v: Any, n: int) -> list[int] | None:
    """A stride/padding/dilation list for ``n`` spatial dims (one value for all where a single one is given)."""
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return None
    return v * n if len(v) == 1 else (v if len(v) == n else None)


def _conv_out(spatial: list[int], kernel: list[int], conc: Any) -> list[int] | None:
    """The output's spatial size of a direct convolution (stride, padding, dilation: concrete inputs 3-5)."""
    n = len(kernel)
    stride, pad, dil = (_per_dim(_concrete(conc, i), n) for i in (3, 4, 5))
    if stride is None or pad is None or dil is None or 0 in stride:
        return None
    out = [(x + 2 * p - d * (k - 1) - 1) // s + 1
           for x, k, s, p, d in zip(spatial, kernel, stride, pad, dil, strict=True)]
    return out if all(o > 0 for o in out) else None


def _conv(dims: list[Any], conc: Any) -> float | None:
    x, w = _shape(dims[0], 3), _shape(dims[1], 3)
    if x is None or w is None or len(x) != len(w):
        return None
    transposed = _concrete(conc, 6)
    if not isinstance(transposed, bool):
        return None
    spatial = x[2:] if transposed else _conv_out(x[2:], w[2:], conc)
    if spatial is None:
        return None
    return 2.0 * x[0] * w[0] * w[1] * math.prod(w[2:]) * math.prod(spatial)


def _conv_backward(dims: list[Any], conc: Any) -> float | None:
    g, x, w = _shape(dims[0], 3), _shape(dims[1], 3), _shape(dims[2], 3)
    if g is None or x is None or w is None or not len(g) == len(x) == len(w):
        return None
    transposed = _concrete(conc, 7)
    if not isinstance(transposed, bool):
        return None  # over grad_output's positions or the input's: the flag says which
    mask = _concrete(conc, 10)
    grads = sum(1 for m in mask[:2] if m is True) if isinstance(mask, list) and len(mask) >= 2 else 2
    spatial = x[2:] if transposed else g[2:]
    return 2.0 * g[0] * w[0] * w[1] * math.prod(w[2:]) * math.prod(spatial) * grads


def _attention(q: Any, k: Any, v: Any) -> float | None:
    q, k, v = _shape(q, 3), _shape(k, 3), _shape(v, 3)
    if q is None or k is None or v is None or k[-1] != q[-1] or v[-2] != k[-2]:
        return None
    return 2.0 * math.prod(q[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])


def conv_attn_flops(name: str, dims: Any, conc: Any) -> float | None:
    """The floating-point operations of one convolution or attention operator (see the module's docstring), or None
    where its shapes (and, for a convolution, its concrete inputs) are not recorded or do not make one."""
    if not isinstance(dims, list):
        return None
    if name == CONV and len(dims) >= 2:
        return _conv(dims, conc)
    if name == CONV_BACKWARD and len(dims) >= 3:
        return _conv_backward(dims, conc)
    if name in _ATTN and len(dims) >= 3:
        return _attention(dims[0], dims[1], dims[2])
    if name in _ATTN_BACKWARD and len(dims) >= 4:
        f = _attention(dims[1], dims[2], dims[3])
        return 2.0 * f if f is not None else None
    return None
