"""Cross-rank family: collectives matched across ranks, clock alignment, waits, stragglers, the critical path and
the root cause."""
