"""The backward pass without the ranks' own transfers beside it, where they share the CPU cores.

Over gloo between ranks of one network stack (``whatif.one_stack_host``) the all-reduces are CPU work: gloo's
worker threads copy and sum on the same cores as the backward pass, which runs slower while a bucket is in flight.
Measured on the README's demo (2 ranks, 2 cores): a 1024 x 1024 layer's backward took 3.2 ms before the first
bucket's all-reduce began and 3.4-9.4 ms during the later ones; a micro-batch under ``no_sync()`` (no transfer at
all) took 33 ms where the traced step's backward ended at 40-45 ms.  The traced run cannot show the backward's
speed without transfers, as every step overlaps the same layers with them; what it does show is the part of the
backward before the first bucket was launched, which ran alone.  At that part's rate per gradient byte, the rest of
the backward is an estimate of its uncontended length: close for layers whose compute follows their parameter count
(linear layers), short where layers compute more per parameter (attention over long sequences, convolutions), so
it serves as a band's optimistic end, never as the prediction itself.
"""

from __future__ import annotations

import numpy as np

from .whatif import Scenario, rebucket


def alone_ready_ns(sc: Scenario) -> float | None:
    """When the last gradient would be ready were the backward not slowed by the transfers (ns from the step
    start), at the rate of the part of the backward before the first bucket's launch; None where that part holds
    no gradient after the first (nothing to take a rate from) or the estimate is not shorter than measured."""
    if sc.ready_ns.size < 3:
        return None
    first = rebucket(sc.sizes, sc.first_bucket_bytes or sc.cap_bytes, sc.cap_bytes)[0]
    end = max(first)  # gradient-ready order: bucket 0 holds the first gradients to be ready
    span_ns = float(sc.ready_ns[end] - sc.ready_ns[0])
    seg_bytes = float(sc.sizes[1:end + 1].sum())
    rest_bytes = float(sc.sizes[end + 1:].sum())
    if span_ns <= 0 or seg_bytes <= 0 or rest_bytes <= 0:
        return None
    est = float(sc.ready_ns[end]) + rest_bytes * span_ns / seg_bytes
    measured = float(np.max(sc.ready_ns))
    return est if est < measured else None
