"""Start a script job's ranks (tests/e2e/*_job.py): ``world`` processes by spawn on a free localhost port, each
calling ``worker(rank, out, port)``, with one OpenMP thread each unless the environment sets another count."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable


def run(worker: Callable[[int, str, int], None], out: str, world: int) -> None:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.start_processes(worker, args=(out, port), nprocs=world, join=True, start_method="spawn")
