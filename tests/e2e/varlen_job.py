"""A 2-rank gloo DDP job whose batches vary in sequence length, as a user's loop over unbucketed text does: each rank
draws a length of 48, 64, 80 or 96 tokens at random for each step (seeded per rank: ``lengths``), feeds a small
transformer encoder and runs AdamW.  Traced with commprof.trace (steps 2-9 profiled, 22 in all).

    python tests/e2e/varlen_job.py OUT
"""

from __future__ import annotations

import random
import sys

WORLD, STEPS, BATCH, WIDTH = 2, 22, 8, 128
LENGTHS = (48, 64, 80, 96)


def lengths(rank: int) -> list[int]:
    """The sequence length each step of ``rank`` draws."""
    rng = random.Random(1000 + rank)
    return [rng.choice(LENGTHS) for _ in range(STEPS)]


def worker(rank: int, out: str, port: int) -> None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    import commprof

    torch.manual_seed(0)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    nn = torch.nn
    layer = nn.TransformerEncoderLayer(d_model=WIDTH, nhead=4, dim_feedforward=4 * WIDTH, batch_first=True)
    model = DDP(nn.Sequential(nn.TransformerEncoder(layer, num_layers=3), nn.Linear(WIDTH, WIDTH)))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    with commprof.trace(out, model=model, wait=1, warmup=1, active=8) as prof:
        for n in lengths(rank):
            x = torch.randn(BATCH, n, WIDTH)
            model(x).pow(2).mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            prof.step()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    from spawnjob import run

    run(worker, sys.argv[1], WORLD)
