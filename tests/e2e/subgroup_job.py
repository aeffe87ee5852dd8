"""A 4-rank gloo job in the shape of tensor + data parallelism: two subgroups of 2 ranks (``new_group``), each
"layer" ending in its subgroup's all-reduce, the "backward" ending each layer in an all-reduce of every rank.
One rank may sleep ``SLEEP_US`` before each subgroup all-reduce.  Traced with plain torch.profiler.

    python tests/e2e/subgroup_job.py OUT SLOW_RANK SLEEP_US      # SLOW_RANK -1: nobody sleeps
"""

from __future__ import annotations

import os
import sys
import time

WORLD, LAYERS, WIDTH, STEPS = 4, 12, 128, 11


def worker(rank: int, out: str, port: int, slow: int, sleep_us: float) -> None:
    import torch
    import torch.distributed as dist
    from torch.profiler import ProfilerActivity, profile, schedule

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    groups = [dist.new_group([0, 1]), dist.new_group([2, 3])]
    mine = groups[rank // 2]
    w = [torch.randn(WIDTH, WIDTH) / WIDTH ** 0.5 for _ in range(LAYERS)]
    x0 = torch.randn(64, WIDTH)
    prof = profile(activities=[ProfilerActivity.CPU], schedule=schedule(wait=1, warmup=1, active=8),
                   on_trace_ready=lambda p: p.export_chrome_trace(os.path.join(out, f"rank{rank}.json")))
    with prof:
        for _ in range(STEPS):
            x = x0
            for layer in range(LAYERS):  # forward: each layer ends in the subgroup's all-reduce
                x = torch.tanh(x @ w[layer])
                if rank == slow:
                    time.sleep(sleep_us / 1e6)
                dist.all_reduce(x, group=mine)
            g = x
            for layer in reversed(range(LAYERS)):  # backward: each layer ends in an all-reduce of every rank
                g = (g @ w[layer].T) * 0.5
                dist.all_reduce(g)
            prof.step()
    dist.barrier()
    dist.destroy_process_group()


def main(out: str, slow: int, sleep_us: float) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.start_processes(_entry, args=(out, port, slow, sleep_us), nprocs=WORLD, join=True, start_method="spawn")


def _entry(rank: int, out: str, port: int, slow: int, sleep_us: float) -> None:
    worker(rank, out, port, slow, sleep_us)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
