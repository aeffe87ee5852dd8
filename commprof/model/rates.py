"""Operation costs measured on the traced machine: by commprof's rate probe at trace start (sidecar) or read
from the trace's own operators (thin matrix products such as PowerSGD's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

# the three thin products of torch's powerSGD_hook, for an n x m gradient M and rank-r factors P (n x r), Q (m x r)
MQ, MTP, PQT = "mq", "mtp", "pqt"  # P = M Q, Q = Mᵀ P, M = P Qᵀ
PRODUCT_KINDS = (MQ, MTP, PQT)


@dataclass(frozen=True, slots=True)
class ThinProduct:
    """One timed product of an n x m matrix with a rank-r factor (per matrix, in ns)."""

    kind: str  # MQ, MTP or PQT
    n: int
    m: int
    r: int
    ns: float


class Orthogonalization(NamedTuple):
    """One timed ``linalg.qr`` of a rows x r factor (PowerSGD's orthogonalization), in ns."""

    rows: int
    r: int
    ns: float


@dataclass(frozen=True, slots=True)
class ProbeRates:
    """The capture probe's measurements (``commprof.capture.probe``)."""

    device: str  # "cpu" or "cuda"
    buffer_bytes: int  # size of the bucket-sized buffers it timed
    pass_bps: float | None  # in-place pass over a buffer (add_)
    fresh_bps: float | None  # element-wise operator writing a fresh buffer (clone, a - b)
    products: tuple[ThinProduct, ...]
    orthogonalize: tuple[Orthogonalization, ...]
    wall_ms: float
