"""A 4-rank gloo job on a 2 x 2 mesh numbered the other way round: DDP over {0, 1} and over {2, 3} (each pair its
own model: width 256, and width 128 with rank 2 given twice the batch), and a tensor-parallel-shaped all-reduce of
each layer's output over {0, 2} and {1, 3}; the loss all-reduced over every rank.  Both kinds of group hold two
ranks; membership alone (contiguous ranks: tensor-parallel) reads them the wrong way round.  Traced with
commprof.trace.

    python tests/e2e/mesh_job.py OUT
"""

from __future__ import annotations

import sys

WORLD, LAYERS, STEPS = 4, 4, 8


def worker(rank: int, out: str, port: int) -> None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    import commprof

    torch.manual_seed(rank // 2)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    dps = [dist.new_group([0, 1]), dist.new_group([2, 3])]
    tps = [dist.new_group([0, 2]), dist.new_group([1, 3])]
    dp, tp = dps[rank // 2], tps[rank % 2]
    width = 256 if rank < 2 else 128
    batch = 128 if rank == 2 else 64
    layers = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(LAYERS)])
    model = DDP(layers, process_group=dp)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch, width)
    with commprof.trace(out, model=model, wait=1, warmup=1, active=4) as prof:
        for _ in range(STEPS):
            h = x
            for layer in layers:
                h = torch.relu(layer(h))
                shard = h.detach().flatten()[:4096].clone()  # one size on every rank (the pairs' widths differ)
                dist.all_reduce(shard, group=tp)  # the shape of a tensor-parallel layer's reduction
            loss = model(x).square().mean()
            loss.backward()
            dist.all_reduce(loss.detach().clone())  # the job's loss over every rank, for its log
            opt.step()
            opt.zero_grad()
            prof.step()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    from spawnjob import run

    run(worker, sys.argv[1], WORLD)
