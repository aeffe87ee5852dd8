"""Reading a chrome-trace file: gzip and its limits, the fast typed decode, the orjson fallback, and the streamed
read of large files laid out as torch writes them.  Every failure becomes one ``InputError`` naming the file."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import orjson

try:  # ISA-L's inflate is about twice as fast as zlib's, the same stream format and checks
    from isal import isal_zlib as _zlib
except ImportError:  # platforms without its wheels
    import zlib as _zlib  # type: ignore[no-redef]

from ..errors import InputError
from ..formats import keys as K
from .events import DOC, EVENTS, Doc, Ev

# Refuse to decompress more than this unless the caller raises it (gzip bombs).
DEFAULT_MAX_BYTES = 8 * 1024**3

CHUNKED_MIN_BYTES = 8 * 1024**2  # JSON bytes from which a trace is streamed
CHUNK_BYTES = 2 * 1024**2  # JSON decoded at a time when streaming (measured: as fast as 16 MB, 40% of the memory)
READ_BYTES = 1024**2  # compressed bytes read at a time
_HEAD_LIMIT = 64 * 1024**2  # the event list must start within this many bytes to be streamed
_HEAD_SEARCH_BYTES = 64 * 1024
_EVENTS_KEY = re.compile(rb'"traceEvents"\s*:\s*\[(\s*)\{')


class Batches:
    """The events of a large trace as consecutive lists, decoded when the parser reaches them."""

    def __init__(self, it: Iterator[list[Ev]]) -> None:
        self.it = it


@dataclass
class Document:
    """A trace file as read: its events (a list of ``Ev``, of dicts for documents orjson decoded, or ``Batches``
    for a streamed file), the keys beside them, and warnings about what reading replaced."""

    events: list[Any] | Batches
    distributed_info: Any = None
    device_properties: Any = None
    base_time_ns: Any = None
    warnings: tuple[str, ...] = ()

    @property
    def info(self) -> dict[str, Any]:
        di = self.distributed_info
        return di if isinstance(di, dict) else {}


class ChunkLayoutError(ValueError):
    """A slice of a large trace did not decode: read it again whole (``read_document(chunked=False)``)."""


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
                                   "(raise it with --max-bytes)")
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
                               "(raise it with --max-bytes)")
    if _valid_utf8(raw):  # msgspec does not check the bytes it skips or keeps raw
        try:
            typed = DOC.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        else:
            return Document(typed.events, typed.distributed_info, typed.device_properties, typed.base_time_ns)
    return _orjson_document(path, raw)


def _orjson_document(path: Path, raw: bytes | bytearray) -> Document:
    warnings: tuple[str, ...] = ()
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
        warnings = (f"{path.name}: invalid UTF-8 in the file, replaced by U+FFFD",)
    return document(doc, path, warnings)


def document(doc: Any, path: Path | str = "<trace>", warnings: tuple[str, ...] = ()) -> Document:
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
                    doc.get(K.BASE_TIME_NS), warnings)


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
            first = f.read(READ_BYTES)
            if first[:2] == b"\x1f\x8b":
                yield from _inflate(path, itertools.chain((first,), iter(lambda: f.read(READ_BYTES), b"")),
                                    max_bytes)
                return
            if first:
                yield first
            yield from iter(lambda: f.read(CHUNK_BYTES), b"")
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or e})") from None


def _inflate(path: Path, chunks: Iterable[bytes | bytearray], max_bytes: int) -> Iterator[bytes]:
    """gunzip: the output of a gzip stream given in chunks, at most CHUNK_BYTES at a time; its first member
    (what follows it is ignored, as by a whole read).  One clear error for corrupt or truncated data and for
    output beyond ``max_bytes`` (gzip bombs)."""
    d = _zlib.decompressobj(16 + _zlib.MAX_WBITS)
    total = 0
    for data in chunks:
        while data and not d.eof:
            try:
                out = d.decompress(data, CHUNK_BYTES)
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


def _gunzip(path: Path, raw: bytes | bytearray, max_bytes: int) -> bytearray:
    out = bytearray()
    for block in _inflate(path, (raw,), max_bytes):
        out += block
    return out


def _stream_document(path: Path, max_bytes: int) -> Document | None:
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
        meta = DOC.decode(prefix + b'"traceEvents": []}')
    except (msgspec.DecodeError, msgspec.ValidationError):
        blocks.close()
        return None
    sep = b"\n" + m.group(1).rsplit(b"\n", 1)[1] + b"{"  # newline + the events' indentation + "{"
    rest = head[m.end() - 1:]
    del head
    return Document(Batches(_stream_slices(blocks, rest, sep, prefix, meta)), meta.distributed_info,
                    meta.device_properties, meta.base_time_ns)


def _stream_slices(blocks, buf: bytearray, sep: bytes, prefix: bytes, meta: Doc):
    """Lists of events, one per slice of about CHUNK_BYTES cut where an event starts; at the end, the
    document's keys after the list must not change what the keys before it said."""
    for block in blocks:
        buf += block
        if len(buf) < CHUNK_BYTES:
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
        whole = DOC.decode(prefix + b'"traceEvents": []' + tail)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise ChunkLayoutError(f"the document around the event list: {e}") from None
    if (whole.events or whole.distributed_info != meta.distributed_info
            or whole.device_properties != meta.device_properties or whole.base_time_ns != meta.base_time_ns):
        raise ChunkLayoutError("keys after the event list change the trace's metadata")


def _decode_events(buf: bytearray, stop: int) -> list[Ev]:
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
        return EVENTS.decode(piece)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise ChunkLayoutError(str(e)) from None


def _valid_utf8(raw: bytes | bytearray) -> bool:
    if raw.isascii():
        return True
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
