"""Reading a large trace a slice at a time, whatever its layout, and the repairs a decode may need.

The events of ``traceEvents`` (or of a bare top-level list) are read, gunzipped and decoded in slices of about
``CHUNK_BYTES`` while the parser consumes them, so that neither the file's text nor more than one slice of
events is in memory at once, for torch's layout (one event per line) as for any other (``json.dump`` writes the
whole trace on one line).  A slice ends between two events: at a ``}`` followed by ``,`` and ``{``; a cut that
falls inside an event (a nested list of objects, or a string) fails to decode as a list of events, and the next
candidate before it is tried.  The keys around the list are decoded at the start and at the end: metadata after
the event list (``json.dump`` keeps the keys' order) is the document's too.

Repairs, each said in a warning: ``NaN`` / ``Infinity`` literals (Python's ``json`` writes them; JSON has none)
are read as ``null``, so that the events holding them are skipped as events without a valid time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import msgspec

from .document import Document
from .events import DOC, EVENTS, Ev

CHUNK_BYTES = 2 * 1024**2  # JSON decoded at a time (measured: as fast as 16 MB, 40% of the memory)
READ_BYTES = 1024**2  # compressed bytes read at a time
HEAD_LIMIT = 64 * 1024**2  # the event list must start within this many bytes to be streamed
HEAD_SEARCH_BYTES = 64 * 1024
SLICE_LIMIT = 256 * 1024**2  # a slice that cannot be cut below this size is read again whole
_CANDIDATES = 16  # cut candidates tried per slice, last first

_EVENTS_KEY = re.compile(rb'"traceEvents"\s*:\s*\[\s*(?=\{)')
_BARE_LIST = re.compile(rb'\s*\[\s*(?=\{)')
_BOUNDARY = re.compile(rb"\}\s*,\s*\{")
_NONFINITE = re.compile(rb'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')


class ChunkLayoutError(ValueError):
    """A slice of a large trace did not decode: read it again whole (``read_document(chunked=False)``)."""


def replace_nonfinite(data: bytes | bytearray) -> tuple[bytes, int]:
    """``data`` with every ``NaN``, ``Infinity`` and ``-Infinity`` outside strings replaced by ``null``, and how
    many there were."""
    count = 0

    def sub(m: re.Match[bytes]) -> bytes:
        nonlocal count
        if m.group(1) is None:
            return m.group(0)
        count += 1
        return b"null"

    out = _NONFINITE.sub(sub, data)
    return out, count


def stream(blocks: Iterator[bytes], doc_factory) -> Document | None:
    """The document of a trace given as blocks of its JSON text, its events streamed; None when the event list
    does not start within HEAD_LIMIT bytes or the keys before it do not decode (then read it whole)."""
    head = bytearray()
    m = None
    search_at = HEAD_SEARCH_BYTES  # searched again each time the head doubles: linear in its size
    for block in blocks:
        head += block
        if len(head) < search_at:
            continue
        m = _find_list(head)
        if m is not None or len(head) > HEAD_LIMIT:
            break
        search_at = 2 * len(head)
    else:
        m = _find_list(head)
    if m is None:
        return None
    bare = m.re is _BARE_LIST
    prefix = bytes(head[:m.start()])
    meta = None
    if not bare:
        try:  # the keys before the event list
            meta = DOC.decode(prefix + b'"traceEvents": []}')
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None
    rest = head[m.end():]
    del head
    doc = doc_factory(meta)
    doc.events.it = _slices(blocks, rest, prefix, bare, doc)
    return doc


def _find_list(head: bytearray) -> re.Match[bytes] | None:
    return _BARE_LIST.match(head) or _EVENTS_KEY.search(head)


def _slices(blocks: Iterator[bytes], buf: bytearray, prefix: bytes, bare: bool, doc: Document) -> Iterator[list[Ev]]:
    """Lists of events, one per slice cut between two events; at the end, the document's keys around the list."""
    repaired = 0
    for block in blocks:
        buf += block
        if len(buf) < CHUNK_BYTES:
            continue
        got = _cut(buf)
        if got is None:
            if len(buf) > SLICE_LIMIT:
                raise ChunkLayoutError("no place to cut the event list between two events")
            continue
        events, cut, fixed = got
        repaired += fixed
        del buf[:cut]
        yield events
        del events
    end = buf.rfind(b"]")
    if end < 0:
        raise ChunkLayoutError("no end of the event list")
    tail = bytes(buf[end + 1:])
    events, fixed = decode_events(buf, end)
    repaired += fixed
    del buf
    yield events
    del events
    _tail_keys(doc, prefix, tail, bare)
    if repaired:
        doc.warnings.append(f"{doc.name}: {repaired:,} non-finite numbers (NaN, Infinity) read as null; events "
                            "with such a time are skipped")


def _tail_keys(doc: Document, prefix: bytes, tail: bytes, bare: bool) -> None:
    """The keys after the event list complete (or override, as a whole read would) the document's metadata."""
    if bare:
        if tail.strip():
            raise ChunkLayoutError("text after the bare event list")
        return
    try:
        whole = DOC.decode(prefix + b'"traceEvents": []' + tail)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as e:
        raise ChunkLayoutError(f"the document around the event list: {e}") from None
    if whole.events:
        raise ChunkLayoutError("a second event list")
    doc.distributed_info = whole.distributed_info
    doc.device_properties = whole.device_properties
    doc.base_time_ns = whole.base_time_ns
    doc.host_name = whole.host_name


def _cut(buf: bytearray) -> tuple[list[Ev], int, int] | None:
    """The events before the last place in ``buf`` where one event ends and the next begins that decodes as a list
    of whole events, where the rest starts, and how many non-finite numbers were read as null; None when no such
    place is found among the last _CANDIDATES."""
    tried = 0
    hi = len(buf)
    while tried < _CANDIDATES and hi > 0:
        lo = max(0, hi - 65536)
        found = list(_BOUNDARY.finditer(buf, lo, hi))
        for m in reversed(found):
            tried += 1
            try:
                events, fixed = decode_events(buf, m.start() + 1)
            except ChunkLayoutError:
                if tried >= _CANDIDATES:
                    return None
                continue
            return events, m.end() - 1, fixed
        hi = found[0].start() + 1 if found else lo
    return None


def decode_events(buf: bytearray, stop: int) -> tuple[list[Ev], int]:
    """The events of ``buf[:stop]`` (whole events separated by commas, maybe a trailing comma), and how many
    non-finite numbers were read as null."""
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
        return EVENTS.decode(piece), 0
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        fixed, n = replace_nonfinite(piece)
        if not n:
            raise ChunkLayoutError(str(e)) from None
        try:
            return EVENTS.decode(fixed), n
        except (msgspec.DecodeError, msgspec.ValidationError) as e2:
            raise ChunkLayoutError(str(e2)) from None
    except RecursionError:
        raise ChunkLayoutError("nested too deeply") from None
