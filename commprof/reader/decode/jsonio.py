"""Reading a chrome-trace file: gzip and its limits, the fast typed decode, the orjson fallback, and the streamed
read of large files laid out as torch writes them.  Every failure becomes one ``InputError`` naming the file."""

from __future__ import annotations

import itertools
import os
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson

try:  # ISA-L's inflate is about twice as fast as zlib's, the same stream format and checks
    from isal import isal_zlib as _zlib
except ImportError:  # platforms without its wheels
    import zlib as _zlib  # type: ignore[no-redef]

from ...errors import InputError
from ...formats import keys as K
from . import stream
from .document import Batches, Document
from .events import DOC

# Refuse to decompress more than this unless the caller raises it (gzip bombs).
DEFAULT_MAX_BYTES = 8 * 1024**3

CHUNKED_MIN_BYTES = 8 * 1024**2  # JSON bytes from which a trace is streamed


def read_document(path: Path, max_bytes: int = DEFAULT_MAX_BYTES, chunked: bool = True) -> Document:
    """Read a .json or .json.gz chrome trace, with one clear error per failure.

    The fast path decodes straight into typed events (msgspec): unknown keys are skipped without building
    objects and every event's ``args`` stays raw until needed.  Documents it refuses (a bare array, an event
    that is not an object, invalid UTF-8, ...) go through orjson and the same checks; the parser puts their
    events in the typed form as it meets them, so both paths give the same result."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(path, f"{size:,} bytes is above the size limit of {max_bytes:,} bytes "
                                   "(raise it with max_bytes=)")
        if chunked and json_size(path) >= CHUNKED_MIN_BYTES:
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
                               "(raise it with max_bytes=)")
    if _valid_utf8(raw):  # msgspec does not check the bytes it skips or keeps raw
        try:
            typed = DOC.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            pass
        else:
            return Document(typed.events, typed.distributed_info, typed.device_properties, typed.base_time_ns,
                            host_name=typed.host_name, name=path.name)
    return _orjson_document(path, raw)


def _orjson_document(path: Path, raw: bytes | bytearray) -> Document:
    """The slow way, with the repairs it allows: invalid UTF-8 replaced, NaN / Infinity read as null."""
    warnings: list[str] = []
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if looks_like_protobuf(raw):
            raise InputError(path, "a binary Perfetto trace (protobuf), not a JSON trace: commprof reads the Chrome "
                                   "JSON trace torch.profiler writes (export_chrome_trace, "
                                   "tensorboard_trace_handler)") from None
        why = str(e).split(":")[0]
        if "depth limit" in why:
            raise InputError(path, "nests lists or objects more than 1024 deep (an event's args?): not a trace "
                                   "commprof can read") from None
        if "UTF-8" in why:  # names with invalid UTF-8 (a truncated multi-byte character, a binary blob)
            raw = raw.decode("utf-8", errors="replace").encode()
            warnings.append(f"{path.name}: invalid UTF-8 in the file, replaced by U+FFFD")
        fixed, n = stream.replace_nonfinite(raw)
        if n:
            warnings.append(f"{path.name}: {n:,} non-finite numbers (NaN, Infinity) read as null; events with such "
                            "a time are skipped")
        try:
            doc = orjson.loads(fixed)
        except orjson.JSONDecodeError as e2:
            raise InputError(path, f"not valid JSON ({str(e2).split(':')[0]}; the file may be truncated)") from None
    return document(doc, path, warnings)


def document(doc: Any, path: Path | str = "<trace>", warnings: list[str] | None = None) -> Document:
    """A chrome trace already decoded into Python objects (a dict with ``traceEvents``, or the bare event list)
    as a ``Document``; one ``InputError`` when it is not one."""
    if isinstance(doc, list):  # the bare-array chrome trace form
        doc = {K.TRACE_EVENTS: doc}
    if not isinstance(doc, dict):
        raise InputError(path, f"top level is a JSON {type(doc).__name__}, not an object with traceEvents")
    if K.TRACE_EVENTS not in doc:
        raise InputError(path, "no 'traceEvents' key: not a Kineto / chrome trace")
    if not isinstance(doc[K.TRACE_EVENTS], list):
        raise InputError(path, "'traceEvents' is not a list")
    return Document(doc[K.TRACE_EVENTS], doc.get(K.DISTRIBUTED_INFO), doc.get(K.DEVICE_PROPERTIES),
                    doc.get(K.BASE_TIME_NS), doc.get(K.HOST_NAME), list(warnings or ()), Path(path).name)


def looks_like_protobuf(raw: bytes | bytearray) -> bool:
    """A Perfetto trace's bytes: a stream of ``TracePacket`` fields (tag 0x0a, a varint length) with control bytes
    no JSON text holds."""
    head = bytes(raw[:256])
    return head[:1] == b"\n" and any(b < 9 or 13 < b < 32 for b in head)


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
            first = f.read(stream.READ_BYTES)
            if first[:2] == b"\x1f\x8b":
                yield from _inflate(path, itertools.chain((first,), iter(lambda: f.read(stream.READ_BYTES), b"")),
                                    max_bytes)
                return
            if first:
                yield first
            yield from iter(lambda: f.read(stream.CHUNK_BYTES), b"")
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or e})") from None


def _inflate(path: Path, chunks: Iterable[bytes | bytearray], max_bytes: int) -> Iterator[bytes]:
    """gunzip: the output of a gzip stream given in chunks, at most stream.CHUNK_BYTES at a time; its first member
    (what follows it is ignored, as by a whole read).  One clear error for corrupt or truncated data and for
    output beyond ``max_bytes`` (gzip bombs)."""
    d = _zlib.decompressobj(16 + _zlib.MAX_WBITS)
    total = 0
    for data in chunks:
        while data and not d.eof:
            try:
                out = d.decompress(data, stream.CHUNK_BYTES)
            except _zlib.error as e:  # type: ignore[misc]  # (isal's stubs declare an instance)
                raise InputError(path, f"corrupt gzip data ({e})") from None
            data = d.unconsumed_tail
            total += len(out)
            if total > max_bytes:
                raise InputError(path, f"decompresses to more than the limit of {max_bytes:,} bytes "
                                       "(raise it with max_bytes=)")
            if out:
                yield out
        if d.eof:
            return
    raise InputError(path, "truncated gzip file (the compressed stream ends early)")


def _gunzip(path: Path, raw: bytes | bytearray, max_bytes: int) -> bytearray:
    out = bytearray()
    for block in _inflate(path, (raw,), max_bytes):
        out += block
    return out


def _stream_document(path: Path, max_bytes: int) -> Document | None:
    """A large trace, its events streamed (``commprof.reader.decode.stream``); None: read it whole."""
    blocks = _blocks(path, max_bytes)
    def new(meta: Any) -> Document:
        d = Document(Batches(iter(())), name=path.name)
        if meta is not None:
            d.distributed_info, d.device_properties, d.base_time_ns = (meta.distributed_info, meta.device_properties,
                                                                       meta.base_time_ns)
            d.host_name = meta.host_name
        return d

    doc = stream.stream(blocks, new)
    if doc is None:
        blocks.close()
    return doc


def _valid_utf8(raw: bytes | bytearray) -> bool:
    if raw.isascii():
        return True
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
