"""One rank of a small gloo DDP job under ``commprof.monitor`` for the monitor's tests.

    python monitor_job.py RANK WORLD PORT OUT MODE STEPS [HANG_TIMEOUT_S] [EVERY]

Each step: DDP forward/backward/SGD, then an all_reduce of the loss (the usual logging pattern).  MODE makes
rank 2 (rank 1 for "slow" and "kill") misbehave at step 5: "ok"; "stop" (sleeps before its backward, forever,
and was started with NCCL_SOCKET_IFNAME=eth9 where its peers were not: inert on gloo, recorded in its dump);
"barrier" (calls barrier where the others all-reduce the loss); "size" (all-reduces 10 elements, not 1);
"slow" (30 ms late in steps 80-159, and started with MALLOC_ARENA_MAX=2 where its peers were not); "kill"
(SIGKILLs itself before step 5's backward); "stall" (rank 1 sleeps 8 s before step 3's backward, once, and goes
on); "short" (rank 1's loop ends after 5 steps, its data run out, and it leaves the monitored block, its process
group destroyed, while the others go on).
"""

import os
import signal
import sys
import time

import torch
import torch.distributed as dist

import commprof


def main() -> None:
    rank, world, port, out, mode, steps = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                                           sys.argv[5], int(sys.argv[6]))
    hang_s = float(sys.argv[7]) if len(sys.argv) > 7 else 600.0
    every = int(sys.argv[8]) if len(sys.argv) > 8 else 100
    torch.set_num_threads(1)
    if mode == "slow" and rank == 1:
        os.environ["MALLOC_ARENA_MAX"] = "2"  # a node set apart by its launcher
    if mode == "stop" and rank == 2:
        os.environ["NCCL_SOCKET_IFNAME"] = "eth9"
    with commprof.monitor(out, hang_timeout_s=hang_s, every=every) as mon:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Sequential(
            torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4)))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        for step in range(steps):
            if step == 5 and mode == "short" and rank == 1:
                break
            loss = model(torch.randn(16, 64)).pow(2).mean()
            if step == 5 and mode == "stop" and rank == 2:
                time.sleep(3600)
            if step == 5 and mode == "kill" and rank == 1:
                os.kill(os.getpid(), signal.SIGKILL)
            if step == 3 and mode == "stall" and rank == 1:
                time.sleep(8.0)
            if mode == "slow" and rank == 1 and 80 <= step < 160:
                time.sleep(0.030)
            if mode == "periodic" and rank == 1 and step % 20 == 10:  # a checkpoint's pause every 20 steps
                time.sleep(0.250)
            loss.backward()
            opt.step()
            opt.zero_grad()
            metric = loss.detach().reshape(1)
            if step == 5 and mode == "barrier" and rank == 2:
                dist.barrier()
            elif step == 5 and mode == "size" and rank == 2:
                dist.all_reduce(torch.ones(10))
            else:
                dist.all_reduce(metric)
            mon.step()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
