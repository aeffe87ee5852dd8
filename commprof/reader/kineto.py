"""One Kineto chrome trace -> ``RankTrace``.

The parser walks the event list once and keeps only what the analysis needs, as numpy columns:
GPU kernels split into compute and comm, memcpy/memset, launches (for step attribution and for
linking a kernel to the CPU call that issued it), ``ProfilerStep#N`` spans, the CPU records of
collectives and, for CPU-only traces, the operators that count as compute.
"""

from __future__ import annotations

import bisect
import itertools
import math
import os
import re
from collections import defaultdict
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import orjson

try:  # ISA-L's inflate is about twice as fast as zlib's, the same stream format and checks
    from isal import isal_zlib as _zlib
except ImportError:  # platforms without its wheels
    import zlib as _zlib  # type: ignore[no-redef]

from ..analysis import intervals as iv
from ..errors import InputError
from ..model import Collective, DPCall, Lane, ProcessGroup, RankTrace, Sidecar, Step
from . import classify as cl
from . import rawkeys as K

_LOAD_WARNINGS = "__commprof_load_warnings__"

# Refuse to decompress more than this unless the caller raises it (gzip bombs).
DEFAULT_MAX_BYTES = 8 * 1024**3


class _Ev(msgspec.Struct, gc=False):  # decoded JSON cannot form reference cycles: not tracked by the GC
    """One trace event, decoded with only the fields the analysis reads.  ``args`` stays undecoded JSON
    (a slice of the file) until an event that needs it asks (``_args``): most events never do."""

    ph: Any = None
    cat: Any = None
    name: Any = None
    pid: Any = None
    tid: Any = None
    ts: Any = None
    dur: Any = None
    args: msgspec.Raw = msgspec.Raw(b"")


class _Doc(msgspec.Struct):
    traceEvents: list[_Ev]  # the file's keys
    distributedInfo: Any = None
    deviceProperties: Any = None
    baseTimeNanoseconds: Any = None


_DECODER = msgspec.json.Decoder(_Doc)


def _args(ev: _Ev) -> dict[str, Any]:
    return _args_of(ev.args)


def _args_of(raw: Any) -> dict[str, Any]:
    """An event's args as a dict (empty when absent or not an object)."""
    if type(raw) is dict:  # an event of a document decoded by orjson keeps its args as they are
        return raw
    if not raw:
        return {}
    a = orjson.loads(memoryview(raw))  # type: ignore[arg-type]
    return a if isinstance(a, dict) else {}


def _as_event(ev: Any) -> Any:
    """An event of a document decoded the slow way (orjson), in the typed form; non-objects stay as they are."""
    if not isinstance(ev, dict):
        return ev
    a = ev.get(K.ARGS)
    return _Ev(ev.get(K.PH), ev.get(K.CAT), ev.get(K.NAME), ev.get(K.PID), ev.get(K.TID), ev.get(K.TS),
               ev.get(K.DUR), a if isinstance(a, dict) else msgspec.Raw(b""))  # type: ignore[arg-type]


def read_document(path: Path, max_bytes: int = DEFAULT_MAX_BYTES, chunked: bool = True) -> dict[str, Any]:
    """Read a .json or .json.gz chrome trace into a dict, with one clear error per failure.

    The fast path decodes straight into typed events (msgspec): unknown keys are skipped without building
    objects and every event's ``args`` stays raw until needed.  Documents it refuses (a bare array, an event
    that is not an object, invalid UTF-8, ...) go through orjson and the same checks as before; the parser
    puts their events in the typed form as it meets them, so both paths give the same result."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(path, f"{size:,} bytes is above the size limit of {max_bytes:,} bytes "
                                   "(raise it with --max-bytes)")
        if chunked and json_size(path) >= _CHUNKED_MIN_BYTES:
            streamed = _stream_document(path, max_bytes)
            if streamed is not None:
                return streamed
        raw: bytes | bytearray = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except PermissionError:
        raise InputError(path, "permission denied: the file cannot be read") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder, not a trace file") from None
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or e})") from None
    if len(raw) == 0:
        raise InputError(path, "empty file")
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(path, raw, max_bytes)
    elif len(raw) > max_bytes:
        raise InputError(path, f"{len(raw):,} bytes is above the size limit of {max_bytes:,} bytes "
                               "(raise it with --max-bytes)")
    typed = None
    if _valid_utf8(raw):  # msgspec does not check the bytes it skips or keeps raw
        try:
            typed = _DECODER.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            typed = None
    if typed is not None:
        return {K.TRACE_EVENTS: typed.traceEvents, K.DISTRIBUTED_INFO: typed.distributedInfo,
                K.DEVICE_PROPERTIES: typed.deviceProperties, K.BASE_TIME_NS: typed.baseTimeNanoseconds}
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if "UTF-8" not in str(e):
            msg = str(e).split(":")[0]
            raise InputError(path, f"not valid JSON ({msg}; the file may be truncated)") from None
        # names with invalid UTF-8 (a truncated multi-byte character, a binary blob): replace, warn, go on
        try:
            doc = orjson.loads(raw.decode("utf-8", errors="replace"))
        except orjson.JSONDecodeError as e2:
            raise InputError(path, f"not valid JSON ({str(e2).split(':')[0]})") from None
        if isinstance(doc, dict):
            doc[_LOAD_WARNINGS] = [f"{path.name}: invalid UTF-8 in the file, replaced by U+FFFD"]
    if isinstance(doc, list):  # the bare-array chrome trace form
        doc = {K.TRACE_EVENTS: doc}
    if not isinstance(doc, dict):
        raise InputError(path, f"top level is a JSON {type(doc).__name__}, not an object with traceEvents")
    if K.TRACE_EVENTS not in doc:
        raise InputError(path, "no 'traceEvents' key: not a Kineto / chrome trace")
    if not isinstance(doc[K.TRACE_EVENTS], list):
        raise InputError(path, "'traceEvents' is not a list")
    return doc


_CHUNKED_MIN_BYTES = 8 * 1024**2  # JSON bytes from which a trace is streamed
_CHUNK_BYTES = 2 * 1024**2  # JSON decoded at a time when streaming (measured: as fast as 16 MB, 40% of the memory)
_READ_BYTES = 1024**2  # compressed bytes read at a time
_HEAD_LIMIT = 64 * 1024**2  # the event list must start within this many bytes to be streamed
_HEAD_SEARCH_BYTES = 64 * 1024
_EVENTS_KEY = re.compile(rb'"traceEvents"\s*:\s*\[(\s*)\{')
_EVENTS_DECODER = msgspec.json.Decoder(list[_Ev])


def json_size(path: Path) -> int:
    """Bytes of JSON a trace file holds: for a gzip file, its trailer's uncompressed size (modulo 4 GiB, and never
    below the compressed size).  Raises OSError as ``open`` does."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 18 or f.read(2) != b"\x1f\x8b":
            return size
        f.seek(-4, os.SEEK_END)
        return max(size, int.from_bytes(f.read(4), "little"))


def _blocks(path: Path, max_bytes: int) -> Generator[bytes, None, None]:
    """The file's JSON bytes, a block at a time, gunzipped on the way when it is gzip; the same errors as a whole
    read."""
    try:
        with open(path, "rb") as f:
            first = f.read(_READ_BYTES)
            if first[:2] == b"\x1f\x8b":
                yield from _inflate(path, itertools.chain((first,), iter(lambda: f.read(_READ_BYTES), b"")),
                                    max_bytes)
                return
            if first:
                yield first
            yield from iter(lambda: f.read(_CHUNK_BYTES), b"")
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or e})") from None


def _inflate(path: Path, chunks: Iterable[bytes | bytearray], max_bytes: int) -> Iterator[bytes]:
    """gunzip: the output of a gzip stream given in chunks, at most _CHUNK_BYTES at a time; its first member
    (what follows it is ignored, as by a whole read).  One clear error for corrupt or truncated data and for
    output beyond ``max_bytes`` (gzip bombs)."""
    d = _zlib.decompressobj(16 + _zlib.MAX_WBITS)
    total = 0
    for data in chunks:
        while data and not d.eof:
            try:
                out = d.decompress(data, _CHUNK_BYTES)
            except _zlib.error as e:  # type: ignore[misc]  # (isal's stubs declare an instance)
                raise InputError(path, f"corrupt gzip data ({e})") from None
            data = d.unconsumed_tail
            total += len(out)
            if total > max_bytes:
                raise InputError(path, f"decompresses to more than the limit of {max_bytes:,} bytes "
                                       "(raise it with --max-bytes)")
            if out:
                yield out
        if d.eof:
            return
    raise InputError(path, "truncated gzip file (the compressed stream ends early)")


def _stream_document(path: Path, max_bytes: int) -> dict[str, Any] | None:
    """A large trace laid out as torch writes it (its keys, then one event per top-level ``{`` at a fixed
    indentation, nested objects indented deeper), streamed: its events are read, gunzipped and decoded a slice
    at a time while the parser consumes them, so that neither the file's text nor more than one slice's typed
    events are ever in memory at once.  None when the layout is not recognised (then the whole document is read
    at once).  What the layout cannot promise is checked as the stream goes (``ChunkLayoutError``)."""
    blocks = _blocks(path, max_bytes)
    head = bytearray()
    m = None
    search_at = _HEAD_SEARCH_BYTES  # searched again each time the head doubles: linear in its size
    for block in blocks:
        head += block
        if len(head) < search_at:
            continue
        m = _EVENTS_KEY.search(head)
        if m is not None or len(head) > _HEAD_LIMIT:
            break
        search_at = 2 * len(head)
    else:
        m = _EVENTS_KEY.search(head)
    if m is None or b"\n" not in m.group(1):
        blocks.close()
        return None
    prefix = bytes(head[:m.start()])
    try:  # the keys before the event list: what the reader needs from them is there before any event
        meta = _DECODER.decode(prefix + b'"traceEvents": []}')
    except (msgspec.DecodeError, msgspec.ValidationError):
        blocks.close()
        return None
    sep = b"\n" + m.group(1).rsplit(b"\n", 1)[1] + b"{"  # newline + the events' indentation + "{"
    rest = head[m.end() - 1:]
    del head
    return {K.TRACE_EVENTS: _Batches(_stream_slices(blocks, rest, sep, prefix, meta)),
            K.DISTRIBUTED_INFO: meta.distributedInfo, K.DEVICE_PROPERTIES: meta.deviceProperties,
            K.BASE_TIME_NS: meta.baseTimeNanoseconds}


def _stream_slices(blocks, buf: bytearray, sep: bytes, prefix: bytes, meta: _Doc):
    """Lists of events, one per slice of about _CHUNK_BYTES cut where an event starts; at the end, the
    document's keys after the list must not change what the keys before it said."""
    for block in blocks:
        buf += block
        if len(buf) < _CHUNK_BYTES:
            continue
        cut = buf.rfind(sep)
        if cut <= 0:
            continue
        events = _decode_events(buf, cut)
        del buf[:cut + 1]
        yield events
        del events
    end = buf.rfind(b"]")
    if end < 0:
        raise ChunkLayoutError("no end of the event list")
    tail = bytes(buf[end + 1:])
    events = _decode_events(buf, end)
    del buf
    yield events
    del events
    try:
        whole = _DECODER.decode(prefix + b'"traceEvents": []' + tail)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise ChunkLayoutError(f"the document around the event list: {e}") from None
    if (whole.traceEvents or whole.distributedInfo != meta.distributedInfo
            or whole.deviceProperties != meta.deviceProperties
            or whole.baseTimeNanoseconds != meta.baseTimeNanoseconds):
        raise ChunkLayoutError("keys after the event list change the trace's metadata")


def _decode_events(buf: bytearray, stop: int) -> list[_Ev]:
    """The events of ``buf[:stop]`` (whole events separated by commas, maybe a trailing comma)."""
    with memoryview(buf) as view:
        tail = stop
        while tail and view[tail - 1] in b" \t\r\n":
            tail -= 1
        if tail and view[tail - 1] == ord(","):
            tail -= 1
        piece = bytearray(b"[")
        piece += view[:tail]
    piece += b"]"
    if not piece.isascii():  # msgspec does not check the bytes it skips or keeps raw
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            raise ChunkLayoutError("invalid UTF-8") from None
    try:
        return _EVENTS_DECODER.decode(piece)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise ChunkLayoutError(str(e)) from None


class _Batches:
    """The events of a large trace as consecutive lists, decoded when the parser reaches them."""

    def __init__(self, it) -> None:
        self.it = it


class ChunkLayoutError(ValueError):
    """A slice of a large trace did not decode: read it again whole (``read_document(chunked=False)``)."""


def _valid_utf8(raw: bytes | bytearray) -> bool:
    if raw.isascii():
        return True
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _gunzip(path: Path, raw: bytes | bytearray, max_bytes: int) -> bytearray:
    out = bytearray()
    for block in _inflate(path, (raw,), max_bytes):
        out += block
    return out


def peek_distributed_info(doc: dict[str, Any]) -> dict[str, Any]:
    di = doc.get(K.DISTRIBUTED_INFO)
    return di if isinstance(di, dict) else {}


# ---- parsing --------------------------------------------------------------------------------------


def _num(x: Any) -> int | float | None:
    """A JSON number usable as a time, else None (strings, bools, NaN, infinities)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _ns(x: int | float) -> int:
    """Microseconds -> integer nanoseconds, exactly for integer input (Unix-epoch microseconds
    times 1000 exceed float64's exact range, so never multiply them as floats)."""
    if isinstance(x, int):
        return x * 1000
    whole = int(x)
    return whole * 1000 + int(round((x - whole) * 1000.0))


_TS_LIMIT_US = 9.0e15  # beyond this, ts * 1000 no longer fits in int64 nanoseconds


@dataclass
class _CpuRec:
    """A CPU-side event that takes part in a collective."""

    start: int
    end: int
    tid: Any
    name: str
    args: dict[str, Any]


@dataclass
class _Scan:
    threads: dict[Any, str] = field(default_factory=dict)
    steps: dict[int, tuple[int, int]] = field(default_factory=dict)
    comp_s: list[int] = field(default_factory=list)
    comp_e: list[int] = field(default_factory=list)
    comp_corr: list[int] = field(default_factory=list)
    mem_s: list[int] = field(default_factory=list)
    mem_e: list[int] = field(default_factory=list)
    mem_corr: list[int] = field(default_factory=list)
    comm_kernels: list[tuple[int, int, str, int, dict[str, Any]]] = field(default_factory=list)
    launches: dict[int, tuple[int, Any]] = field(default_factory=dict)
    calls: dict[str, list[_CpuRec]] = field(default_factory=lambda: defaultdict(list))
    transfers: list[_CpuRec] = field(default_factory=list)
    cpu_ops: dict[Any, tuple[list[int], list[int]]] = field(default_factory=dict)
    cpu_excl: dict[Any, tuple[list[int], list[int]]] = field(default_factory=dict)
    pageable: list[tuple[int, int, int, int, bool]] = field(default_factory=list)  # start, end, corr, bytes, HtoD
    syncs: list[tuple[int, int]] = field(default_factory=list)  # host-side synchronizing runtime calls
    memory: dict[str, tuple[int, int]] = field(default_factory=dict)  # device -> peak allocated, reserved
    elementwise: list[float] = field(default_factory=list)  # bytes/s of large element-wise CPU operators
    dp_ops: list[_CpuRec] = field(default_factory=list)  # nn.DataParallel's autograd functions
    # GPU transfers DataParallel may launch: start, end, correlation, device, kind, bytes
    dp_gpu: list[tuple[int, int, int, int, str, int]] = field(default_factory=list)
    comp_dev: list[int] = field(default_factory=list)  # device of each compute kernel
    skipped: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    n_events: int = 0


def _scan(events: Any) -> _Scan:
    sc = _Scan()
    kinds: dict[str, int] = {}  # operator names repeat: classify each once
    for batch in (events.it if isinstance(events, _Batches) else (events,)):
        _scan_batch(sc, batch, kinds)
        del batch  # before the next slice is decoded: one slice's events alive at a time
    return sc


# what a CPU-side complete event is, by name (decided once per distinct name)
_K_STEP, _K_GLOO, _K_RPC, _K_NCCL, _K_C10D, _K_EXCL, _K_COMPUTE, _K_ELEMENTWISE, _K_DP = range(9)


def _name_kind(name: str) -> int:
    if name.startswith(K.STEP_PREFIX):
        return _K_STEP
    if name.startswith("gloo:"):
        return _K_GLOO
    if name == K.RPC:
        return _K_RPC
    if name.startswith("nccl:"):
        return _K_NCCL
    if name.startswith("c10d::") and name != "c10d::wait" and not name.startswith("c10d::_"):
        return _K_C10D
    if name in DP_OPS:
        return _K_DP  # DataParallel's functions count as compute
    if not cl.cpu_is_compute(name):
        return _K_EXCL
    return _K_ELEMENTWISE if name in _ELEMENTWISE else _K_COMPUTE


class _Ids(msgspec.Struct):
    """The two keys of a runtime call's or a compute kernel's args the analysis reads: decoding only them (into
    a struct, skipping the rest) is several times cheaper than decoding the args object."""

    correlation: Any = None
    device: Any = None


class _MemArgs(msgspec.Struct):
    alloc: Any = msgspec.field(default=None, name="Total Allocated")
    reserved: Any = msgspec.field(default=None, name="Total Reserved")
    dtype: Any = msgspec.field(default=None, name="Device Type")
    did: Any = msgspec.field(default=None, name="Device Id")


_IDS = msgspec.json.Decoder(_Ids)
_MEM = msgspec.json.Decoder(_MemArgs)
_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1


def _as_orjson(v: Any) -> Any:
    """A number as orjson (the full args decode) gives it: integers beyond 64 bits become floats."""
    return float(v) if type(v) is int and not _I64_MIN <= v <= _U64_MAX else v


def _ids_of(raw: Any) -> tuple[Any, Any]:
    """args.correlation and args.device of an event's args, None where absent (or args is not an object)."""
    if type(raw) is dict:
        return raw.get(K.A_CORRELATION), raw.get("device")
    if not raw:
        return None, None
    try:
        a = _IDS.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None, None  # args that are not an object read as empty
    return _as_orjson(a.correlation), _as_orjson(a.device)


def _scan_batch(sc: _Scan, events: list[Any], kinds: dict[str, int]) -> None:
    skipped = sc.skipped
    cpu_ops, cpu_excl = sc.cpu_ops, sc.cpu_excl
    comp_s, comp_e = sc.comp_s, sc.comp_e
    # events whose args are read in bulk after the loop (one decode call for all of them, see _bulk)
    rt_args: list[Any] = []
    rt_launch: list[tuple[int, Any]] = []
    kn_args: list[Any] = []
    kn_pid: list[Any] = []
    mem_args: list[Any] = []
    ew_args: list[Any] = []
    ew_ns: list[int] = []
    n_complete = 0
    for ev in events:
        if type(ev) is not _Ev:
            if not isinstance(ev, dict):
                skipped["not an object"] += 1
                continue
            ev = _as_event(ev)  # a document decoded by orjson (or built by hand)
        ph = ev.ph
        if ph != "X":
            if ph == K.PH_META:
                if ev.name == "thread_name":
                    a = _args(ev)
                    if isinstance(a.get("name"), str):
                        # a thread may be named twice ("python", then "pt_gloo_runloop"): keep both
                        prev = sc.threads.get(ev.tid, "")
                        sc.threads[ev.tid] = (prev + " " + a["name"]).strip()
            elif ph == "i" and ev.name == "[memory]":
                mem_args.append(ev.args)
            continue
        n_complete += 1
        name = ev.name
        if type(name) is not str:
            skipped["no name"] += 1
            continue
        ts, dur = ev.ts, ev.dur
        tt, td = type(ts), type(dur)
        # the common case inline (plain numbers in range; NaN and infinities fail the comparisons)
        if (tt is int or tt is float) and (td is int or td is float) and 0 <= ts <= _TS_LIMIT_US \
                and 0 <= dur <= _TS_LIMIT_US:
            start = ts * 1000 if tt is int else _ns(ts)
            end = start + (dur * 1000 if td is int else _ns(dur))
        else:
            ts, dur = _num(ts), _num(dur)
            if ts is None or dur is None:
                skipped["no valid ts/dur"] += 1
            else:
                skipped["negative or out-of-range ts/dur"] += 1
            continue
        cat = ev.cat
        if cat == K.CAT_CPU_OP:
            kind = kinds.get(name)
            if kind is None:
                kind = kinds[name] = _name_kind(name)
            if kind >= _K_EXCL:
                _add_cpu(cpu_excl if kind == _K_EXCL else cpu_ops, ev.tid, start, end)
                if kind == _K_ELEMENTWISE:
                    if end > start:
                        ew_args.append(ev.args)
                        ew_ns.append(end - start)
                elif kind == _K_DP:
                    sc.dp_ops.append(_CpuRec(start, end, ev.tid, name, _args(ev)))
                continue
        elif cat == K.CAT_RUNTIME or cat == K.CAT_DRIVER:
            rt_args.append(ev.args)
            rt_launch.append((start, ev.tid))
            if name in cl.SYNC_RUNTIME:
                sc.syncs.append((start, end))
            continue
        elif cat == K.CAT_KERNEL:
            if name.startswith(cl.COMM_KERNEL_PREFIXES):
                args = _args(ev)
                corr = args.get(K.A_CORRELATION)
                corr = corr if isinstance(corr, int) else -1
                sc.comm_kernels.append((start, end, name, corr, args))
                sc.dp_gpu.append((start, end, corr, _int_or(args.get("device"), _int_or(ev.pid, -1)), "nccl", 0))
            else:
                kn_args.append(ev.args)
                kn_pid.append(ev.pid)
                comp_s.append(start)
                comp_e.append(end)
            continue
        elif cat == K.CAT_MEMCPY or cat == K.CAT_MEMSET:
            _memcpy_event(sc, ev, cat, name, start, end)
            continue
        elif cat == K.CAT_GPU_USER_ANNOTATION:
            continue
        else:
            kind = kinds.get(name)
            if kind is None:
                kind = kinds[name] = _name_kind(name)
            if kind >= _K_EXCL:
                continue  # operators count only as cpu_op events
        # a step, or a collective's CPU-side record, of any CPU category
        if kind == _K_STEP:
            try:
                num = int(name[len(K.STEP_PREFIX):])
            except ValueError:
                skipped["unreadable ProfilerStep number"] += 1
                continue
            sc.steps.setdefault(num, (start, end))
        elif kind == _K_GLOO:
            sc.transfers.append(_CpuRec(start, end, ev.tid, name, _args(ev)))
        elif kind == _K_RPC:
            sc.calls["rpc"].append(_CpuRec(start, end, ev.tid, name, _args(ev)))
        elif kind == _K_NCCL:
            sc.calls["annotation"].append(_CpuRec(start, end, ev.tid, name, _args(ev)))
        else:  # _K_C10D
            sc.calls["c10d"].append(_CpuRec(start, end, ev.tid, name, _args(ev)))
            _add_cpu(cpu_excl, ev.tid, start, end)
    sc.n_events += n_complete
    _launches(sc, rt_args, rt_launch)
    _kernel_ids(sc, kn_args, kn_pid)
    _memory_peaks(sc, mem_args)
    _elementwise_rates(sc, ew_args, ew_ns)


_IDS_LIST = msgspec.json.Decoder(list[_Ids])
_MEM_LIST = msgspec.json.Decoder(list[_MemArgs])


def _bulk(raws: list[Any], decoder: msgspec.json.Decoder) -> list[Any] | None:
    """The raw args of many events decoded in one call (joined into one JSON array) into structs of the few
    keys read: a decode call per event costs more than the decoding.  None when the call refuses them (args
    that are dicts, from a document decoded by orjson; empty, or not objects): then each is decoded alone."""
    try:
        out = decoder.decode(b"[" + b",".join(raws) + b"]")
    except (TypeError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return out if len(out) == len(raws) else None  # a lone empty args reads as no item at all


def _launches(sc: _Scan, raws: list[Any], launch: list[tuple[int, Any]]) -> None:
    """Runtime calls by correlation id: when and on which thread the CPU launched GPU work."""
    if not raws:
        return
    bulk = _bulk(raws, _IDS_LIST)
    corrs = [_ids_of(a)[0] for a in raws] if bulk is None else [i.correlation for i in bulk]
    launches = sc.launches
    for c, la in zip(corrs, launch, strict=True):
        if type(c) is int and _I64_MIN <= c <= _U64_MAX:  # beyond 64 bits orjson gives a float: not an id
            launches[c] = la


def _kernel_ids(sc: _Scan, raws: list[Any], pids: list[Any]) -> None:
    """Correlation id (-1 without) and device (else the event's pid, else -1) of each compute kernel."""
    if not raws:
        return
    bulk = _bulk(raws, _IDS_LIST)
    ids = [_ids_of(a) for a in raws] if bulk is None else [(i.correlation, i.device) for i in bulk]
    corr_out, dev_out = sc.comp_corr, sc.comp_dev
    for (c, d), pid in zip(ids, pids, strict=True):
        if type(c) is int:
            if not _I64_MIN <= c <= _U64_MAX:
                c = -1
        elif type(c) is not bool:
            c = -1
        corr_out.append(c)
        dev_out.append(d if type(d) is int and _I64_MIN <= d <= _U64_MAX else (pid if type(pid) is int else -1))


def _memory_peaks(sc: _Scan, raws: list[Any]) -> None:
    """[memory] instants: the allocator's totals after each allocation or free; keep each device's peaks."""
    if not raws:
        return
    bulk = _bulk(raws, _MEM_LIST)
    items = bulk if bulk is not None else [_mem_args(raw) for raw in raws]
    mem = sc.memory
    names: dict[Any, str] = {}
    for m in items:
        if m is None:
            continue
        alloc = m.alloc
        if type(alloc) is not int or not _I64_MIN <= alloc <= _U64_MAX:
            continue
        key = (m.dtype, m.did, type(m.did))
        try:
            dev = names[key]
        except KeyError:
            dev = names[key] = _device_name(_as_orjson(m.dtype), _as_orjson(m.did))
        except TypeError:  # an unhashable Device Id
            dev = _device_name(_as_orjson(m.dtype), m.did)
        res = m.reserved
        reserved = res if type(res) is int and _I64_MIN <= res <= _U64_MAX else 0
        peak = mem.get(dev)
        if peak is None:
            mem[dev] = (max(0, alloc), max(0, reserved))
        elif alloc > peak[0] or reserved > peak[1]:
            mem[dev] = (max(peak[0], alloc), max(peak[1], reserved))


class _Shapes(msgspec.Struct):
    dims: Any = msgspec.field(default=None, name="Input Dims")
    types: Any = msgspec.field(default=None, name="Input type")


_SHAPES_LIST = msgspec.json.Decoder(list[_Shapes])


def _elementwise_rates(sc: _Scan, raws: list[Any], durations: list[int]) -> None:
    """Bytes per second of the large element-wise operators (one memory pass over their first input)."""
    if not raws:
        return
    bulk = _bulk(raws, _SHAPES_LIST)
    shapes = ([_args_of(a) for a in raws] if bulk is None
              else [{K.A_INPUT_DIMS: b.dims, K.A_INPUT_TYPE: b.types} for b in bulk])
    for a, ns in zip(shapes, durations, strict=True):
        nb = _elementwise_bytes(a)
        if nb:
            sc.elementwise.append(nb / ns * 1e9)


def _device_name(dtype: Any, did: Any) -> str:
    return f"{'cuda' if dtype == 1 else 'cpu'}:{did}"


def _mem_args(raw: Any) -> _MemArgs | None:
    """One [memory] event's args in the struct the bulk decode gives (None: no usable args)."""
    if type(raw) is dict:
        return _MemArgs(raw.get("Total Allocated"), raw.get("Total Reserved"), raw.get("Device Type"),
                        raw.get("Device Id")) if raw else None
    if not raw:
        return None
    try:
        return _MEM.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _memcpy_event(sc: _Scan, ev: _Ev, cat: str, name: str, start: int, end: int) -> None:
    args = _args(ev)
    corr = args.get(K.A_CORRELATION)
    corr = corr if isinstance(corr, int) else -1
    sc.mem_s.append(start)
    sc.mem_e.append(end)
    sc.mem_corr.append(corr)
    if cat == K.CAT_MEMCPY and (name.startswith("Memcpy PtoP") or name.startswith("Memcpy DtoD")
                                or name.startswith("Memcpy HtoD")):
        nb = args.get("bytes")
        mdev = _int_or(args.get("device", args.get("inDevice")), -1)
        sc.dp_gpu.append((start, end, corr, mdev, name.split(" ")[1],
                          nb if isinstance(nb, int) and nb >= 0 else 0))
    if cat == K.CAT_MEMCPY and "Pageable" in name:
        nb = args.get("bytes")
        sc.pageable.append((start, end, corr, nb if isinstance(nb, int) and nb >= 0 else 0, "HtoD" in name))


# in-place / out-of-place element-wise operators whose first input's bytes measure one memory pass
_ELEMENTWISE = frozenset({"aten::copy_", "aten::add_", "aten::mul", "aten::mul_", "aten::div_", "aten::add",
                          "aten::sub", "aten::div"})
_TYPE_BYTES = {"float": 4, "c10::Half": 2, "c10::BFloat16": 2, "double": 8}
_MIN_ELEMENTWISE_BYTES = 1 << 20  # smaller operators measure per-operator overhead, not memory


# nn.DataParallel's autograd functions (torch/nn/parallel/_functions.py): the profiler records each call
# under its class name (THPFunction_apply's RECORD_FUNCTION), with the tensors' Input Dims
DP_OPS = frozenset({"Broadcast", "Scatter", "Gather", "ReduceAddCoalesced"})


def _int_or(v: Any, default: int) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else default


def _tensor_bytes(args: dict[str, Any]) -> int | None:
    """Bytes of every tensor argument with a known dtype (Input Dims x Input type); None without shapes."""
    dims, types = args.get(K.A_INPUT_DIMS), args.get(K.A_INPUT_TYPE)
    if not isinstance(dims, list) or not isinstance(types, list):
        return None
    total = 0
    for d, t in zip(dims, types, strict=False):
        size = _TYPE_BYTES.get(t) if isinstance(t, str) else None
        n = _numel_of_dims(d) if size else None
        if size and n:
            total += n * size
    return total


def _elementwise_bytes(args: dict[str, Any]) -> int | None:
    dims = args.get(K.A_INPUT_DIMS)
    if not isinstance(dims, list) or not dims:
        return None
    numel = _numel_of_dims(dims[0])
    size = _TYPE_BYTES.get(_first_type(args) or "")
    if numel is None or size is None or numel * size < _MIN_ELEMENTWISE_BYTES:
        return None
    return numel * size


def _add_cpu(table: dict[Any, tuple[list[int], list[int]]], tid: Any, s: int, e: int) -> None:
    lst = table.get(tid)
    if lst is None:
        lst = table[tid] = ([], [])
    lst[0].append(s)
    lst[1].append(e)


# ---- metadata of one collective -----------------------------------------------------------------


def _numel_of_dims(dims: Any) -> int | None:
    """Elements of one ``Input Dims`` entry: a tensor ``[d0, d1]`` or a tensor list ``[[..], [..]]``."""
    if not isinstance(dims, list) or not dims:
        return None
    if all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
        n = 1
        for d in dims:
            n *= max(d, 0)
        return n
    if all(isinstance(d, list) for d in dims):
        parts = [_numel_of_dims(d) for d in dims]
        vals = [p for p in parts if p is not None]
        return sum(vals) if vals else None
    return None


def _numel_from_args(args: dict[str, Any]) -> int | None:
    dims = args.get(K.A_INPUT_DIMS)
    if not isinstance(dims, list):
        return None
    vals = [n for n in (_numel_of_dims(d) for d in dims[:2]) if n is not None]
    return max(vals) if vals else None


def _first_type(args: dict[str, Any]) -> str | None:
    t = args.get(K.A_INPUT_TYPE)
    if isinstance(t, list) and t and isinstance(t[0], str) and t[0] not in ("", "TensorList", "Scalar"):
        return t[0]
    return None


def _int_arg(args: dict[str, Any], key: str) -> int | None:
    v = args.get(key)
    if isinstance(v, bool):
        return None
    if isinstance(v, int) and 0 <= v < 2**62:
        return v
    if isinstance(v, str) and v.isdigit() and len(v) < 19:
        return int(v)
    return None


@dataclass
class _Meta:
    op: str = "unknown"
    pg: str | None = None
    group_size: int | None = None
    dtype: str = "unknown"
    numel: int | None = None
    seq: int | None = None
    pg_ptr: str | None = None


def _meta_from(recs: list[_CpuRec]) -> _Meta:
    """Collective metadata from the nested CPU records of one call (outermost first)."""
    m = _Meta()
    for r in recs:
        a = r.args
        if r.name == K.RPC:
            cn = a.get(K.A_COLL_NAME)
            if isinstance(cn, str) and cn:
                m.op = cl.canonical_op(cn)
            nin, nout = _int_arg(a, K.A_IN_NELEMS), _int_arg(a, K.A_OUT_NELEMS)
            if nin is not None or nout is not None:
                m.numel = max(nin or 0, nout or 0)
            gs = _int_arg(a, K.A_GROUP_SIZE)
            if gs:
                m.group_size = gs
            if isinstance(a.get(K.A_DTYPE), str):
                m.dtype = cl.canonical_dtype(a[K.A_DTYPE])
            pg = a.get(K.A_PG_NAME)
            if isinstance(pg, (str, int)) and not isinstance(pg, bool):
                m.pg = str(pg)
            seq = _int_arg(a, K.A_SEQ)
            conc = a.get(K.A_CONCRETE)
            types = a.get(K.A_INPUT_TYPE)
            # old record_param_comms(inputs, seq, pg_ptr, rank, name, in_split, out_split, world_size)
            if (isinstance(conc, list) and len(conc) == 8 and isinstance(types, list) and len(types) == 8
                    and types[1] == "Scalar" and types[2] == "Scalar"):
                if seq is None and isinstance(conc[1], str) and conc[1].isdigit():
                    seq = int(conc[1])
                if isinstance(conc[2], str) and conc[2].isdigit():
                    m.pg_ptr = conc[2]
                if m.group_size is None and isinstance(conc[7], str) and conc[7].isdigit():
                    m.group_size = int(conc[7]) or None
            if seq is not None:
                m.seq = seq
            if m.numel is None:
                m.numel = _numel_from_args(a) or None
        else:
            if m.op == "unknown" and not r.name.startswith("c10d::barrier"):
                m.op = cl.canonical_op(r.name)
            elif r.name.startswith("c10d::barrier"):
                m.op = "barrier"
            if m.numel is None or r.name.startswith(("nccl:", "gloo:")):
                n = _numel_from_args(r.args)
                if n:
                    m.numel = n
            t = _first_type(r.args)
            if t and m.dtype == "unknown":
                m.dtype = cl.canonical_dtype(t)
    return m


# ---- the parser ---------------------------------------------------------------------------------


def parse_document(path: Path, doc: dict[str, Any], rank_hint: int | None = None,
                   sidecar: Sidecar | None = None) -> RankTrace:
    """Turn a loaded chrome-trace document into a ``RankTrace``."""
    warnings: list[str] = []
    di = peek_distributed_info(doc)
    rank = di.get(K.DI_RANK) if isinstance(di.get(K.DI_RANK), int) else rank_hint
    if rank is None:
        rank = 0
        warnings.append(f"{path.name}: no rank in distributedInfo or the file name; taken as rank 0")
    world = di.get(K.DI_WORLD) if isinstance(di.get(K.DI_WORLD), int) else None
    backend = di.get(K.DI_BACKEND) if isinstance(di.get(K.DI_BACKEND), str) else None
    base = doc.get(K.BASE_TIME_NS)
    base_ns = base if isinstance(base, int) and not isinstance(base, bool) and 0 <= base < 2**63 else 0
    pgs = _process_groups(di)
    props = [d for d in doc.get(K.DEVICE_PROPERTIES) or [] if isinstance(d, dict)]
    devices = tuple(str(d.get("name")) for d in props if d.get("name"))
    device_memory = {f"cuda:{d.get('id')}": int(d["totalGlobalMem"]) for d in props
                     if isinstance(d.get("totalGlobalMem"), int) and not isinstance(d.get("totalGlobalMem"), bool)}

    sc = _scan(doc[K.TRACE_EVENTS])
    warnings.extend(doc.get(_LOAD_WARNINGS) or [])
    for why, n in sorted(sc.skipped.items()):
        warnings.append(f"{path.name}: skipped {n:,} events ({why})")
    usable = sc.n_events - sum(sc.skipped.values())
    if usable <= 0 and not sc.steps:
        why = ", ".join(f"{n:,} {k}" for k, n in sorted(sc.skipped.items())) or "the event list is empty"
        raise InputError(path, f"no usable trace events ({why})")

    steps = tuple(Step(n, s, e) for n, (s, e) in sorted(sc.steps.items()) if e > s)
    steps = _drop_overlapping_steps(steps, warnings, path)
    device_kind = "cuda" if (sc.comp_s or sc.comm_kernels) else "cpu"
    if not steps:
        lo, hi = _extent(sc)
        if hi > lo:
            warnings.append(f"{path.name}: no ProfilerStep#N spans; the whole trace is taken as one step")
            steps = (Step(0, lo, hi),)
    step_starts = np.array([s.start_ns for s in steps], dtype=np.int64)
    step_ends = np.array([s.end_ns for s in steps], dtype=np.int64)
    step_nums = np.array([s.number for s in steps], dtype=np.int64)

    attribute = _StepOf(step_starts, step_ends, step_nums)

    def launch_time(corrs: list[int]) -> np.ndarray:
        """When the CPU launched each GPU event; -1 where the trace lacks the launch."""
        la = sc.launches
        missing = (-1, None)
        return np.array([la.get(c, missing)[0] for c in corrs], dtype=np.int64)

    def step_of(launch: np.ndarray, start: np.ndarray) -> np.ndarray:
        return attribute(np.where(launch >= 0, launch, start))

    # compute lane
    if device_kind == "cuda":
        cs = np.array(sc.comp_s, dtype=np.int64)
        ce = np.array(sc.comp_e, dtype=np.int64)
        cl_ns = launch_time(sc.comp_corr)
        compute = Lane(cs, ce, step_of(cl_ns, cs), cl_ns)
    else:
        compute = _cpu_compute_lane(sc, attribute)
    ms = np.array(sc.mem_s, dtype=np.int64)
    ml_ns = launch_time(sc.mem_corr)
    memcpy = Lane(ms, np.array(sc.mem_e, dtype=np.int64), step_of(ml_ns, ms), ml_ns)

    pg_s = np.array([p[0] for p in sc.pageable], dtype=np.int64)
    pg_e = np.array([p[1] for p in sc.pageable], dtype=np.int64)
    pg_l = launch_time([p[2] for p in sc.pageable])
    pageable = Lane(pg_s, pg_e, step_of(pg_l, pg_s), pg_l)
    pageable_bytes = np.array([p[3] for p in sc.pageable], dtype=np.int64)
    pageable_htod = np.array([p[4] for p in sc.pageable], dtype=bool)
    sy_s = np.array([p[0] for p in sc.syncs], dtype=np.int64)
    syncs = Lane(sy_s, np.array([p[1] for p in sc.syncs], dtype=np.int64), attribute(sy_s), sy_s)
    dp_launched = _dp_launched(sc) if sc.dp_ops else []
    collectives, comm_s, comm_e, comm_issue = _collectives(sc, device_kind, attribute, world, pgs,
                                                             warnings, path, dp_launched)
    comm = Lane(comm_s, comm_e, step_of(comm_issue, comm_s), comm_issue)

    if sidecar is not None:
        if sidecar.rank != rank:
            warnings.append(f"{sidecar.path}: sidecar says rank {sidecar.rank} but the trace is rank {rank}; "
                            "sidecar ignored")
            sidecar = None
        else:
            world = world or sidecar.world_size
            backend = backend or sidecar.backend
    return RankTrace(rank=rank, world_size=world, backend=backend, path=str(path), device_kind=device_kind,
                     devices=devices, base_time_ns=base_ns, steps=steps, compute=compute, comm=comm,
                     memcpy=memcpy, collectives=tuple(collectives), process_groups=pgs, sidecar=sidecar,
                     warnings=tuple(warnings), event_count=sc.n_events, pageable=pageable,
                     pageable_bytes=pageable_bytes, pageable_htod=pageable_htod, host_syncs=syncs,
                     memory_peak=dict(sc.memory), device_memory=device_memory,
                     # only CPU operators that do the work measure memory passes (on GPU traces they launch it)
                     elementwise_bps=float(np.median(sc.elementwise))
                     if device_kind == "cpu" and len(sc.elementwise) >= 3 else None,
                     dp_calls=_dp_calls(dp_launched, attribute), device_busy=_device_busy(sc, step_of, launch_time)
                     if sc.dp_ops else {})


class _StepOf:
    """The ProfilerStep number a time falls in (-1 outside every step): ``(times)`` for an array, ``.one(t)``."""

    def __init__(self, starts: np.ndarray, ends: np.ndarray, nums: np.ndarray) -> None:
        self.starts, self.ends, self.nums = starts, ends, nums
        self._lists = (starts.tolist(), ends.tolist(), nums.tolist())

    def __call__(self, times: np.ndarray) -> np.ndarray:
        if self.starts.size == 0:
            return np.full(times.shape, -1, dtype=np.int64)
        idx = np.searchsorted(self.starts, times, side="right") - 1
        ok = (idx >= 0) & (times < self.ends[np.clip(idx, 0, None)])
        return np.where(ok, self.nums[np.clip(idx, 0, None)], -1)

    def one(self, t: int) -> int:
        starts, ends, nums = self._lists
        i = bisect.bisect_right(starts, t) - 1
        return nums[i] if i >= 0 and t < ends[i] else -1


def _dp_launched(sc: _Scan) -> list[tuple[_CpuRec, list[tuple[int, int, int, int, str, int]]]]:
    """Each nn.DataParallel call with the GPU work it launched (``sc.dp_gpu`` entries, matched by correlation
    to a launch inside the call on the same thread), in time order."""
    idx = _ThreadIndex(sc.dp_ops)
    gpu: dict[int, list[tuple[int, int, int, int, str, int]]] = defaultdict(list)
    for g in sc.dp_gpu:
        la = sc.launches.get(g[2])
        call = idx.enclosing(la[1], la[0]) if la is not None else None
        if call is not None:
            gpu[id(call)].append(g)
    return [(r, gpu.get(id(r), [])) for r in sorted(sc.dp_ops, key=lambda r: r.start)]


def _dp_kernel_bytes(dp_launched) -> dict[int, int]:
    """Bytes per device of the NCCL kernels nn.DataParallel launched (correlation -> bytes): a Broadcast sends
    its tensors to every device; a ReduceAddCoalesced takes one replica's share from each."""
    out: dict[int, int] = {}
    for call, launched in dp_launched:
        corrs = [g[2] for g in launched if g[4] == "nccl"]
        total = _tensor_bytes(call.args)
        if not corrs or not total:
            continue
        each = total // len(corrs) if call.name == "ReduceAddCoalesced" else total
        for c in corrs:
            out[c] = each
    return out


def _dp_calls(calls, attribute) -> tuple[DPCall, ...]:
    """nn.DataParallel's calls with the GPU work launched inside each."""
    if not calls:
        return ()
    steps = attribute(np.array([r.start for r, _ in calls], dtype=np.int64))
    return tuple(DPCall(r.name, r.start, r.end, int(st), _tensor_bytes(r.args),
                        tuple((dev, start, end, kind, nb) for start, end, _c, dev, kind, nb in launched))
                 for (r, launched), st in zip(calls, steps, strict=True))


def _device_busy(sc: _Scan, step_of, launch_time) -> dict[int, dict[int, int]]:
    """Per step and device: the union of compute-kernel time."""
    if not sc.comp_s:
        return {}
    cs = np.array(sc.comp_s, dtype=np.int64)
    ce = np.array(sc.comp_e, dtype=np.int64)
    st = step_of(launch_time(sc.comp_corr), cs)
    dev = np.array(sc.comp_dev, dtype=np.int64)
    out: dict[int, dict[int, int]] = defaultdict(dict)
    for s_ in np.unique(st[st >= 0]).tolist():
        for d in np.unique(dev).tolist():
            m = (st == s_) & (dev == d)
            if m.any():
                out[int(s_)][int(d)] = int(iv.length(iv.union(cs[m], ce[m])))
    return dict(out)


def _extent(sc: _Scan) -> tuple[int, int]:
    lo, hi = 2**63 - 1, 0
    for s_list, e_list in [(sc.comp_s, sc.comp_e), (sc.mem_s, sc.mem_e)] + list(sc.cpu_ops.values()):
        if s_list:
            lo, hi = min(lo, min(s_list)), max(hi, max(e_list))
    for k in sc.comm_kernels:
        lo, hi = min(lo, k[0]), max(hi, k[1])
    for r in sc.transfers + [r for v in sc.calls.values() for r in v]:
        lo, hi = min(lo, r.start), max(hi, r.end)
    return (lo, hi) if hi > lo else (0, 0)


def _drop_overlapping_steps(steps: tuple[Step, ...], warnings: list[str], path: Path) -> tuple[Step, ...]:
    out: list[Step] = []
    for s in sorted(steps, key=lambda s: s.start_ns):
        if out and s.start_ns < out[-1].end_ns:
            warnings.append(f"{path.name}: ProfilerStep#{s.number} overlaps ProfilerStep#{out[-1].number}; "
                            "ignored")
            continue
        out.append(s)
    return tuple(out)


def _process_groups(di: dict[str, Any]) -> tuple[ProcessGroup, ...]:
    out = []
    cfg = di.get(K.DI_PG_CONFIG)
    if isinstance(cfg, list):
        for pg in cfg:
            if not isinstance(pg, dict):
                continue
            ranks = pg.get("ranks")
            if isinstance(ranks, str):
                try:
                    ranks = orjson.loads(ranks)
                except orjson.JSONDecodeError:
                    ranks = []
            ranks_t = tuple(r for r in ranks if isinstance(r, int)) if isinstance(ranks, list) else ()
            out.append(ProcessGroup(str(pg.get("pg_name", "?")), str(pg.get("pg_desc", "")), ranks_t))
    return tuple(out)


def _cpu_compute_lane(sc: _Scan, attribute) -> Lane:
    """Per training thread: union(cpu ops) minus union(bookkeeping and waits); then all threads."""
    # gloo's worker threads run collectives; send/recv run on the calling (training) thread
    gloo_tids = {t for t, n in sc.threads.items() if "gloo" in n}
    gloo_tids |= {r.tid for r in sc.transfers} - set(sc.cpu_ops)
    parts_s, parts_e = [], []
    for tid, (s, e) in sc.cpu_ops.items():
        if tid in gloo_tids:
            continue
        span = iv.union(s, e)
        excl = sc.cpu_excl.get(tid)
        if excl:
            span = iv.subtract(span, (np.array(excl[0], np.int64), np.array(excl[1], np.int64)))
        parts_s.append(span[0])
        parts_e.append(span[1])
    if parts_s:
        s_arr = np.concatenate(parts_s)
        e_arr = np.concatenate(parts_e)
    else:
        s_arr = e_arr = np.zeros(0, np.int64)
    return Lane(s_arr, e_arr, attribute(s_arr), s_arr)


class _ThreadIndex:
    """CPU records of one kind per thread, sorted, for 'which record encloses time t' queries."""

    def __init__(self, recs: list[_CpuRec]) -> None:
        self.by_tid: dict[Any, tuple[list[int], list[_CpuRec]]] = {}
        tmp: dict[Any, list[_CpuRec]] = defaultdict(list)
        for r in recs:
            tmp[r.tid].append(r)
        for tid, lst in tmp.items():
            lst.sort(key=lambda r: r.start)
            self.by_tid[tid] = ([r.start for r in lst], lst)

    def enclosing(self, tid: Any, t: int) -> _CpuRec | None:
        entry = self.by_tid.get(tid)
        if entry is None:
            return None
        starts, lst = entry
        i = bisect.bisect_right(starts, t) - 1
        # records of one kind do not nest, but allow a short look back for robustness
        for j in range(i, max(i - 3, -1), -1):
            if lst[j].start <= t <= lst[j].end:
                return lst[j]
        return None

    def within(self, tid: Any, lo: int, hi: int) -> _CpuRec | None:
        entry = self.by_tid.get(tid)
        if entry is None:
            return None
        starts, lst = entry
        i = bisect.bisect_left(starts, lo)
        if i < len(lst) and lst[i].start <= hi:
            return lst[i]
        return None


def _collectives(sc: _Scan, device_kind: str, attribute, world: int | None,
                 pgs: tuple[ProcessGroup, ...], warnings: list[str], path: Path, dp_launched=()):
    """Pair CPU calls with their execution (kernels or gloo transfers) and describe each collective."""
    calls_by_kind = sc.calls
    primary_kind = next((k for k in ("rpc", "annotation", "c10d") if calls_by_kind.get(k)), None)
    primary = sorted(calls_by_kind.get(primary_kind, []) if primary_kind else [], key=lambda r: r.start)
    idx_ann = _ThreadIndex(calls_by_kind.get("annotation", []))
    idx_c10d = _ThreadIndex(calls_by_kind.get("c10d", []))
    idx_primary = _ThreadIndex(primary)

    # metadata of each primary call, from itself and the records nested around it
    metas: list[_Meta] = []
    for r in primary:
        nest: list[_CpuRec] = []
        if primary_kind != "c10d":
            outer = idx_c10d.enclosing(r.tid, r.start)
            if outer is not None:
                nest.append(outer)
        nest.append(r)
        if primary_kind == "rpc":
            inner = idx_ann.within(r.tid, r.start, r.end)
            if inner is not None:
                nest.append(inner)
        metas.append(_meta_from(nest))

    # execution side
    exec_of: dict[int, list[tuple[int, int, str, dict[str, Any]]]] = defaultdict(list)
    orphans: list[tuple[int, int, str, dict[str, Any], int]] = []  # no CPU call found
    pos = {id(r): i for i, r in enumerate(primary)}
    if device_kind == "cuda":
        for start, end, name, corr, args in sc.comm_kernels:
            la = sc.launches.get(corr)
            call = idx_primary.enclosing(la[1], la[0]) if la is not None else None
            if call is None:
                orphans.append((start, end, name, args, la[0] if la is not None else -1))
            else:
                exec_of[pos[id(call)]].append((start, end, name, args))
    else:
        # gloo: the k-th transfer of an op pairs with the k-th call of that op, in time order
        by_op_calls: dict[str, list[int]] = defaultdict(list)
        for i, m in enumerate(metas):
            by_op_calls[m.op].append(i)
        by_op_tr: dict[str, list[_CpuRec]] = defaultdict(list)
        for t in sorted(sc.transfers, key=lambda r: r.start):
            by_op_tr[cl.canonical_op(t.name)].append(t)
        for op, trs in by_op_tr.items():
            cand = by_op_calls.get(op, [])
            for k, t in enumerate(trs):
                if k < len(cand) and primary[cand[k]].start <= t.start + 1_000:
                    exec_of[cand[k]].append((t.start, t.end, t.name, t.args))
                else:
                    orphans.append((t.start, t.end, t.name, t.args, t.start))

    default_pg = pgs[0].name if pgs else "0"
    pg_by_name: dict[str, ProcessGroup] = {}
    for p in pgs:
        pg_by_name.setdefault(p.name, p)  # the first of a name, as a search in order finds it
    ptr_labels: dict[str, str] = {}
    out: list[Collective] = []
    cs: list[int] = []
    ce: list[int] = []
    ci: list[int] = []
    missing_bytes = 0
    for i, (r, m) in enumerate(zip(primary, metas, strict=True)):
        execs = exec_of.get(i, [])
        if (m.op == "unknown" and not execs) or m.op == "wait":
            continue  # the record_param_comms of a wait(): bookkeeping, not a collective
        if execs:
            ex_meta = _meta_from([_CpuRec(e[0], e[1], None, e[2], e[3]) for e in execs[:1]])
            if m.numel is None:
                m.numel = ex_meta.numel
            if m.dtype == "unknown":
                m.dtype = ex_meta.dtype
        col, nobytes = _make_collective(m, r.start, execs, default_pg, ptr_labels, world, pg_by_name, attribute)
        missing_bytes += nobytes
        out.append(col)
        for e in execs:
            cs.append(e[0])
            ce.append(e[1])
            ci.append(r.start)
    dp_bytes = _dp_kernel_bytes(dp_launched) if device_kind == "cuda" else {}
    for start, end, name, args, issue in orphans:
        m = _meta_from([_CpuRec(start, end, None, name, args)])
        if device_kind == "cuda":
            kop, _a, _p, kdt = cl.parse_kernel_name(name)
            m.op = kop
            if m.dtype == "unknown" and kdt:
                m.dtype = kdt
            nb = dp_bytes.get(_int_or(args.get(K.A_CORRELATION), -1))
            if nb is not None and m.numel is None:  # launched by nn.DataParallel: its call's tensors say
                m.numel, m.dtype = nb // 4, "float32" if m.dtype == "unknown" else m.dtype
        execs = [(start, end, name, args)]
        col, nobytes = _make_collective(m, None, execs, default_pg, ptr_labels, world, pg_by_name, attribute,
                                        issue_for_step=issue if issue >= 0 else start)
        missing_bytes += nobytes
        out.append(col)
        cs.append(start)
        ce.append(end)
        ci.append(issue)
    if missing_bytes:
        warnings.append(f"{path.name}: {missing_bytes} collectives carry no size (no record_param_comms sizes, "
                        "Input Dims or dtype); their bytes count as 0")
    if orphans and device_kind == "cuda" and primary:
        warnings.append(f"{path.name}: {len(orphans)} communication kernels have no CPU-side record; "
                        "op and dtype taken from the kernel name")
    out.sort(key=lambda c: (c.issue_ns if c.issue_ns is not None else (c.start_ns or 0)))
    return (out, np.array(cs, dtype=np.int64), np.array(ce, dtype=np.int64), np.array(ci, dtype=np.int64))


def _make_collective(m: _Meta, issue: int | None, execs, default_pg: str, ptr_labels: dict[str, str],
                     world: int | None, pg_by_name: dict[str, ProcessGroup], attribute,
                     issue_for_step: int | None = None) -> tuple[Collective, int]:
    if m.pg is not None:
        pg = m.pg
    elif m.pg_ptr is not None:
        # old traces name a group only by its address, which differs between ranks: label groups by
        # the order of their first use instead (the default group is nearly always used first)
        if m.pg_ptr not in ptr_labels:
            ptr_labels[m.pg_ptr] = default_pg if not ptr_labels else f"pg{len(ptr_labels)}"
        pg = ptr_labels[m.pg_ptr]
    else:
        pg = default_pg
    gsize = m.group_size
    if gsize is None:
        match = pg_by_name.get(pg)
        gsize = len(match.ranks) if match and match.ranks else (world or 1)
    size = cl.dtype_size(m.dtype)
    nobytes = 0
    if m.numel is None or size == 0:
        nbytes = 0
        nobytes = 1
    else:
        nbytes = m.numel * size
    name = execs[0][2] if execs else ""
    algo = proto = None
    if name and cl.is_comm_kernel(name):
        kop, algo, proto, _dt = cl.parse_kernel_name(name)
        if m.op == "unknown":
            m.op = kop
    op = m.op
    start = min(e[0] for e in execs) if execs else None
    end = max(e[1] for e in execs) if execs else None
    t_step = issue if issue is not None else (issue_for_step if issue_for_step is not None else start)
    step = attribute.one(t_step) if t_step is not None else -1
    lane = ""
    if execs:
        a = execs[0][3]
        lane = f"stream {a[K.A_STREAM]}" if K.A_STREAM in a else "gloo"
    return Collective(op=op, process_group=pg, group_size=int(gsize), dtype=m.dtype, bytes=int(nbytes),
                      issue_ns=issue, start_ns=start, end_ns=end, step=step, seq=m.seq, name=name,
                      lane=lane, algorithm=algo, protocol=proto), nobytes

