"""Cross-rank family: collectives matched across ranks, clock alignment, waits and stragglers."""
