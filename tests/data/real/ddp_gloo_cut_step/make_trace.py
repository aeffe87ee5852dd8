"""How rank{0,1}.json.gz were made: DDP over gloo in 2 CPU processes, 8 steps, traced with plain torch.profiler
(record_shapes=True) on schedule(wait=1, warmup=1, active=3) with repeat=0 (torch's default: cycles repeat until
the loop ends).  The loop's 8 steps end inside the second cycle, so leaving the profiler exports that cut cycle:
ProfilerStep#7 (a whole step) and ProfilerStep#8, opened by the last prof.step() and closed by the profiler's exit
a few microseconds later with no work in it.

    python make_trace.py OUT_DIR     # then gzip -9 -n OUT_DIR/rank*.json
"""

import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank: int, world: int, port: int, out: str) -> None:
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.profiler import ProfilerActivity, profile, schedule

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.ReLU()) for _ in range(4)],
                                torch.nn.Linear(512, 10))
    ddp = DDP(model, bucket_cap_mb=1)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(rank)
    exports = []
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True,
                 schedule=schedule(wait=1, warmup=1, active=3, repeat=0),
                 on_trace_ready=lambda p: (p.export_chrome_trace(f"{out}/rank{rank}.json"), exports.append(1))) as prof:
        for _ in range(8):
            loss = torch.nn.functional.cross_entropy(ddp(torch.randn(64, 512, generator=gen)),
                                                     torch.randint(0, 10, (64,), generator=gen))
            loss.backward()
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
    mp.spawn(worker, args=(2, port, out), nprocs=2)
