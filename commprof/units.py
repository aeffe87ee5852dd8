"""Units and the one table of element sizes.

Times inside commprof are integer nanoseconds; Kineto's ``ts`` / ``dur`` are microseconds, often fractional.
Element types arrive under many spellings (Kineto's ``Input type`` "float" / "c10::Half", NCCL kernel names
"f16", record_param_comms' "Float", torch's "float32"): ``canonical_dtype`` maps every one of them to torch's
name, and ``dtype_size`` gives its bytes.
"""

from __future__ import annotations

NS_PER_MS = 1_000_000
MiB = 1024 * 1024

_DTYPE_CANON = {
    "float": "float32", "float32": "float32", "c10::float": "float32", "f32": "float32",
    "double": "float64", "float64": "float64",
    "half": "float16", "c10::half": "float16", "float16": "float16", "f16": "float16",
    "bfloat16": "bfloat16", "c10::bfloat16": "bfloat16", "bf16": "bfloat16",
    "long int": "int64", "long": "int64", "int64": "int64", "long long": "int64",
    "int": "int32", "int32": "int32", "short int": "int16", "short": "int16", "int16": "int16",
    "signed char": "int8", "char": "int8", "int8": "int8", "unsigned char": "uint8", "byte": "uint8",
    "uint8": "uint8", "bool": "bool",
    "c10::float8_e4m3fn": "float8_e4m3fn", "c10::float8_e5m2": "float8_e5m2",
}

DTYPE_BYTES: dict[str, int] = {
    "float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "int16": 2, "int8": 1,
    "uint8": 1, "bool": 1, "uint32": 4, "uint64": 8, "float8_e4m3fn": 1, "float8_e5m2": 1,
}

# the floating-point types gradients and activations are computed in
FLOAT_DTYPES = frozenset({"float32", "float64", "float16", "bfloat16"})

# a parameter whose dtype the sidecar does not name is taken as fp32
DEFAULT_PARAM_BYTES = 4


def canonical_dtype(raw: str | None) -> str:
    """Any spelling of an element type -> torch's name (``"c10::Half"`` -> ``"float16"``); "unknown" for none."""
    if not raw:
        return "unknown"
    key = raw.strip().lower()
    return _DTYPE_CANON.get(key, key)


def dtype_size(dtype: str) -> int:
    """Bytes per element of a canonical dtype; 0 when unknown (the caller then warns instead of guessing)."""
    return DTYPE_BYTES.get(dtype, 0)


def float_size(raw: str | None) -> int | None:
    """Bytes per element of a floating-point type under any spelling; None for other or unknown types."""
    d = canonical_dtype(raw)
    return DTYPE_BYTES[d] if d in FLOAT_DTYPES else None


def param_bytes(numel: int, dtype: str) -> int:
    """Bytes of a parameter (or its gradient) of ``numel`` elements of torch dtype ``dtype``."""
    return numel * (DTYPE_BYTES.get(dtype) or DEFAULT_PARAM_BYTES)


def us_to_ns(x: int | float) -> int:
    """Microseconds -> integer nanoseconds, exactly for integer input (Unix-epoch microseconds times 1000
    exceed float64's exact range, so never multiply them as floats)."""
    if isinstance(x, int):
        return x * 1000
    whole = int(x)
    return whole * 1000 + int(round((x - whole) * 1000.0))


def ms(ns: float) -> float:
    return ns / NS_PER_MS


def ms_text(ms: float, digits: int = 2) -> str:
    """A figure in ms as text, read from its microsecond rounding first: summary.json keeps 3 decimals and the
    renderers print from it, so a finding that printed the raw figure could read one hundredth apart
    (56.0749 -> "56.07" beside summary's 56.075 -> "56.08")."""
    return f"{round(float(ms), 3):.{digits}f}"
