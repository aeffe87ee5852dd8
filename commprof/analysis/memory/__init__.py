"""Memory family: peak memory per rank, allocator churn and the DDP -> FSDP2 what-if."""
