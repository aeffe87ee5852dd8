"""How rank{0,1}.json.gz were made: FSDP2 (fully_shard) over gloo in 2 CPU processes, traced with plain
torch.profiler (record_shapes=True, schedule wait 1, warmup 1, active 2), no commprof.

    python make_trace.py OUT_DIR [STEPS]     # then gzip -9 -n OUT_DIR/rank*.json
"""

import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank: int, world: int, port: int, out: str, steps: int) -> None:
    from torch.distributed.fsdp import fully_shard
    from torch.profiler import ProfilerActivity, profile, schedule

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)
    blocks = [torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU()) for _ in range(4)]
    model = torch.nn.Sequential(*blocks, torch.nn.Linear(256, 10))
    for m in blocks:
        fully_shard(m)
    fully_shard(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, schedule=schedule(wait=1, warmup=1, active=2),
                 on_trace_ready=lambda p: p.export_chrome_trace(f"{out}/rank{rank}.json")) as prof:
        for _ in range(steps):
            model(torch.randn(32, 256)).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
            prof.step()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(2, port, out, int(sys.argv[2]) if len(sys.argv) > 2 else 4), nprocs=2)
