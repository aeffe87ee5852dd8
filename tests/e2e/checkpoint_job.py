"""A 2-rank gloo DDP job whose rank 0 saves a checkpoint at the end of every third step (``torch.save`` of the
model's state, 25 MB, flushed to disk), as a user's loop does; rank 1 waits for it in the next step's first
all-reduce.  Traced with commprof.trace (steps 2-7 profiled, 14 in all).

    python tests/e2e/checkpoint_job.py OUT     (the checkpoints go to OUT-checkpoints)
"""

from __future__ import annotations

import os
import sys

WORLD, STEPS, EVERY = 2, 14, 3


def worker(rank: int, out: str, port: int) -> None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    import commprof

    torch.manual_seed(0)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    nn = torch.nn
    model = DDP(nn.Sequential(*[nn.Sequential(nn.Linear(1024, 1024), nn.ReLU()) for _ in range(6)],
                              nn.Linear(1024, 10)), bucket_cap_mb=5)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    folder = out + "-checkpoints"
    with commprof.trace(out, model=model, wait=1, warmup=1, active=6) as prof:
        for step in range(STEPS):
            x, y = torch.randn(32, 1024), torch.randint(0, 10, (32,))
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if rank == 0 and step % EVERY == 0:
                os.makedirs(folder, exist_ok=True)
                with open(os.path.join(folder, "last.pt"), "wb") as f:
                    torch.save(model.module.state_dict(), f)
                    f.flush()
                    os.fsync(f.fileno())
            prof.step()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    from spawnjob import run

    run(worker, sys.argv[1], WORLD)
