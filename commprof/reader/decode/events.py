"""Trace events as msgspec decodes them: only the fields the analysis reads, ``args`` kept as raw JSON until an
event that needs it asks, and bulk decoders that read a few keys of many events' args in one call."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import orjson

from ...formats import keys as K

I64_MIN, U64_MAX = -(2**63), 2**64 - 1


class Ev(msgspec.Struct, gc=False):  # decoded JSON cannot form reference cycles: not tracked by the GC
    """One trace event, decoded with only the fields the analysis reads.  ``args`` stays undecoded JSON
    (a slice of the file) until an event that needs it asks (``args_of``): most events never do."""

    ph: Any = msgspec.field(default=None, name=K.PH)
    cat: Any = msgspec.field(default=None, name=K.CAT)
    name: Any = msgspec.field(default=None, name=K.NAME)
    pid: Any = msgspec.field(default=None, name=K.PID)
    tid: Any = msgspec.field(default=None, name=K.TID)
    ts: Any = msgspec.field(default=None, name=K.TS)
    dur: Any = msgspec.field(default=None, name=K.DUR)
    args: msgspec.Raw = msgspec.field(default=msgspec.Raw(b""), name=K.ARGS)


class Doc(msgspec.Struct):
    """A chrome-trace document: the event list and the keys beside it that the reader uses."""

    events: list[Ev] = msgspec.field(name=K.TRACE_EVENTS)
    distributed_info: Any = msgspec.field(default=None, name=K.DISTRIBUTED_INFO)
    device_properties: Any = msgspec.field(default=None, name=K.DEVICE_PROPERTIES)
    base_time_ns: Any = msgspec.field(default=None, name=K.BASE_TIME_NS)
    host_name: Any = msgspec.field(default=None, name=K.HOST_NAME)


DOC = msgspec.json.Decoder(Doc)
EVENTS = msgspec.json.Decoder(list[Ev])


def args_of(raw: Any) -> dict[str, Any]:
    """An event's args as a dict (empty when absent or not an object)."""
    if type(raw) is dict:  # an event of a document decoded by orjson keeps its args as they are
        return raw
    if not raw:
        return {}
    try:
        a = orjson.loads(memoryview(raw))  # type: ignore[arg-type]
    except orjson.JSONDecodeError:
        return {}  # args orjson refuses (a number beyond a float's range): read as none
    return a if isinstance(a, dict) else {}


def as_event(ev: Any) -> Any:
    """An event of a document decoded the slow way (orjson), in the typed form; non-objects stay as they are."""
    if not isinstance(ev, dict):
        return ev
    a = ev.get(K.ARGS)
    return Ev(ev.get(K.PH), ev.get(K.CAT), ev.get(K.NAME), ev.get(K.PID), ev.get(K.TID), ev.get(K.TS),
              ev.get(K.DUR), a if isinstance(a, dict) else msgspec.Raw(b""))  # type: ignore[arg-type]


def as_orjson(v: Any) -> Any:
    """A number as orjson (the full args decode) gives it: integers beyond 64 bits become floats."""
    return float(v) if type(v) is int and not I64_MIN <= v <= U64_MAX else v


def time_number(x: Any) -> int | float | None:
    """A JSON number usable as a time, else None (strings, bools, NaN, infinities)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# ---- the few keys of bulk events' args ----------------------------------------------------------------


class Ids(msgspec.Struct):
    """The two keys of a runtime call's or a compute kernel's args the analysis reads: decoding only them (into
    a struct, skipping the rest) is several times cheaper than decoding the args object."""

    correlation: Any = msgspec.field(default=None, name=K.A_CORRELATION)
    device: Any = msgspec.field(default=None, name=K.A_DEVICE)


class MemArgs(msgspec.Struct):
    alloc: Any = msgspec.field(default=None, name=K.A_TOTAL_ALLOCATED)
    reserved: Any = msgspec.field(default=None, name=K.A_TOTAL_RESERVED)
    dtype: Any = msgspec.field(default=None, name=K.A_DEVICE_TYPE)
    did: Any = msgspec.field(default=None, name=K.A_DEVICE_ID)
    addr: Any = msgspec.field(default=None, name=K.A_MEM_ADDR)
    nbytes: Any = msgspec.field(default=None, name=K.A_MEM_BYTES)


class Shapes(msgspec.Struct):
    dims: Any = msgspec.field(default=None, name=K.A_INPUT_DIMS)
    types: Any = msgspec.field(default=None, name=K.A_INPUT_TYPE)


class ProductShapes(msgspec.Struct):  # a product's: a convolution's output size needs its concrete inputs too
    dims: Any = msgspec.field(default=None, name=K.A_INPUT_DIMS)
    concrete: Any = msgspec.field(default=None, name=K.A_CONCRETE)


_IDS = msgspec.json.Decoder(Ids)
_MEM = msgspec.json.Decoder(MemArgs)
IDS_LIST = msgspec.json.Decoder(list[Ids])
MEM_LIST = msgspec.json.Decoder(list[MemArgs])
SHAPES_LIST = msgspec.json.Decoder(list[Shapes])
PRODUCTS_LIST = msgspec.json.Decoder(list[ProductShapes])


def bulk(raws: list[Any], decoder: msgspec.json.Decoder) -> list[Any] | None:
    """The raw args of many events decoded in one call (joined into one JSON array) into structs of the few
    keys read: a decode call per event costs more than the decoding.  None when the call refuses them (args
    that are dicts, from a document decoded by orjson; empty, or not objects): then each is decoded alone."""
    try:
        out = decoder.decode(b"[" + b",".join(raws) + b"]")
    except (TypeError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return out if len(out) == len(raws) else None  # a lone empty args reads as no item at all


def ids_of(raw: Any) -> tuple[Any, Any]:
    """args.correlation and args.device of an event's args, None where absent (or args is not an object)."""
    if type(raw) is dict:
        return raw.get(K.A_CORRELATION), raw.get(K.A_DEVICE)
    if not raw:
        return None, None
    try:
        a = _IDS.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None, None  # args that are not an object read as empty
    return as_orjson(a.correlation), as_orjson(a.device)


def mem_args(raw: Any) -> MemArgs | None:
    """One [memory] event's args in the struct the bulk decode gives (None: no usable args)."""
    if type(raw) is dict:
        return MemArgs(raw.get(K.A_TOTAL_ALLOCATED), raw.get(K.A_TOTAL_RESERVED), raw.get(K.A_DEVICE_TYPE),
                       raw.get(K.A_DEVICE_ID), raw.get(K.A_MEM_ADDR), raw.get(K.A_MEM_BYTES)) if raw else None
    if not raw:
        return None
    try:
        return _MEM.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def shapes_of(raws: list[Any]) -> list[dict[str, Any]]:
    """``Input Dims`` and ``Input type`` of many events' args, as dicts."""
    got = bulk(raws, SHAPES_LIST)
    if got is None:
        return [args_of(a) for a in raws]
    return [{K.A_INPUT_DIMS: b.dims, K.A_INPUT_TYPE: b.types} for b in got]


def product_shapes_of(raws: list[Any]) -> list[dict[str, Any]]:
    """``Input Dims`` and ``Concrete Inputs`` of many products' args (``reader.matmuls``), as dicts."""
    got = bulk(raws, PRODUCTS_LIST)
    if got is None:
        return [args_of(a) for a in raws]
    return [{K.A_INPUT_DIMS: b.dims, K.A_CONCRETE: b.concrete} for b in got]
