"""A trace file as read: its events and the keys beside them (``jsonio`` reads it, ``stream`` streams it)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


class Batches:
    """The events of a large trace as consecutive lists, decoded when the parser reaches them."""

    def __init__(self, it: Iterator[list[Any]]) -> None:
        self.it = it


@dataclass
class Document:
    """A trace file as read: its events (a list of ``Ev``, of dicts for documents orjson decoded, or ``Batches``
    for a streamed file), the keys beside them, and warnings about what reading replaced.  A streamed document's
    keys after the event list and its warnings are complete once its events have been read."""

    events: list[Any] | Batches
    distributed_info: Any = None
    device_properties: Any = None
    base_time_ns: Any = None
    host_name: Any = None
    warnings: list[str] = field(default_factory=list)
    name: str = ""

    @property
    def info(self) -> dict[str, Any]:
        di = self.distributed_info
        return di if isinstance(di, dict) else {}
