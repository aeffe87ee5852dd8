"""A 2-rank gloo DDP job training a small convolutional network, rank 1 on larger images (48 x 48 against 32 x 32:
2.25x its convolutions' work; the head after global pooling the same on both), traced with commprof.trace: the
case where the linear layers' products alone read "no more work" and the verdict would blame a slower CPU.

    python tests/e2e/cnn_job.py OUT
"""

from __future__ import annotations

import sys

WORLD, STEPS, BATCH = 2, 8, 16
SIDE = {0: 32, 1: 48}  # each rank's image side


def network():
    import torch

    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def worker(rank: int, out: str, port: int) -> None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    import commprof

    torch.manual_seed(0)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    model = DDP(network())
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(BATCH, 3, SIDE[rank], SIDE[rank]), torch.randint(0, 10, (BATCH,))
    with commprof.trace(out, model=model, wait=1, warmup=1, active=4) as prof:
        for _ in range(STEPS):
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
            prof.step()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    from spawnjob import run

    run(worker, sys.argv[1], WORLD)
