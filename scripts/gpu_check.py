"""GPU check: the demo model on one CUDA GPU with NCCL (world size 1) under commprof.trace(), then the
report; checks that kernels, streams and record_param_comms were read, and the matrix work per step is the
model's count; then FSDP2 (fully_shard) on the same GPU:
its units and settings are found (world size 1 has no communication to replay).  Prints what it found; exit 0 = ok.

    python scripts/gpu_check.py [OUT_DIR]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def train_traced(net, out: Path, batch: int, model=None) -> None:
    """8 SGD steps of ``net`` on random data on the GPU, under commprof.trace (``model``: the DDP module)."""
    import torch

    import commprof

    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    with commprof.trace(out, model=model) as prof:
        for _ in range(8):
            x = torch.randn(batch, 4096, device="cuda")
            y = torch.randint(0, 10, (batch,), device="cuda")
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            prof.step()
    torch.cuda.synchronize()


def main(out: Path) -> int:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    import commprof
    from commprof.workloads.demo import DEFAULTS, build_model, free_port

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device", file=sys.stderr)
        return 2
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    torch.cuda.set_device(0)
    model = build_model({**DEFAULTS, "width": 4096, "layers": 8}).cuda()
    ddp = DDP(model, device_ids=[0], bucket_cap_mb=25)
    train_traced(ddp, out, batch=256, model=ddp)
    fsdp_ok = fsdp_check(out.parent / (out.name + "-fsdp"))
    dist.destroy_process_group()

    run = commprof.load(out)
    rep = commprof.analyze(run)
    (rt,) = run.ranks
    n_params = sum(p.numel() for p in model.parameters())
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, nccl {torch.cuda.nccl.version()}")
    print(f"trace: {rt.device_kind}, {len(rt.compute)} compute kernels, {len(rt.comm)} comm kernels, "
          f"{len(rt.memcpy)} memcpy/memset, {len(rt.collectives)} collectives, steps {[s.number for s in rt.steps]}")
    ok = True
    for s in rt.steps:
        b = sum(c.bytes for c in rt.collectives if c.step == s.number)
        print(f"  step {s.number}: {b:,} bytes all-reduced (parameters x 4 = {n_params * 4:,})")
        ok &= b == n_params * 4
    ok &= rt.device_kind == "cuda" and len(rt.compute) > 0
    ok &= all(c.process_group and c.group_size == 1 for c in rt.collectives)
    ok &= len(rep.bucket_rows) > 0
    # the matrix work per step (reader/matmuls.py): the forward's products, the weights' gradients and the inputs'
    # gradients of every layer but the first, from the shapes the launching CPU operators recorded
    flops = 2 * 256 * 4096 * 4096 * (8 + 8 + 7) + 3 * 2 * 256 * 4096 * 10
    work = dict(rt.matrix_flops)
    print(f"  matrix work per step: {sorted(round(f / 1e9, 3) for f in work.values())} GFLOP "
          f"(model: {flops / 1e9:.3f})")
    ok &= len(work) == len(rt.steps) and all(abs(f - flops) <= 1e-9 * flops for f in work.values())
    from commprof.render import text

    print(text.render(rep))
    if torch.cuda.device_count() >= 2:
        ok &= dataparallel_check(out.parent / (out.name + "-dataparallel"))
    else:
        print("dataparallel: skipped (needs two or more GPUs; tests/dp_trace.py builds such a trace instead)")
    ok &= fsdp_ok
    print("gpu_check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


def fsdp_check(out: Path) -> bool:
    """FSDP2 on one GPU: 4 transformer blocks, each a unit, traced with commprof.trace(model=root)."""
    import torch

    import commprof
    from commprof.workloads.fsdpdemo import DEFAULTS, build, shard

    cfg = {**DEFAULTS, "model": "transformer", "width": 512, "layers": 4, "heads": 8}
    torch.manual_seed(0)
    model, units = build(cfg)
    model.cuda()
    shard(model, units, cfg)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with commprof.trace(out, model=model) as prof:
        for _ in range(8):
            x = torch.randn(16, 64, 512, device="cuda")
            model(x).sum().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            prof.step()
    torch.cuda.synchronize()
    rep = commprof.analyze(commprof.load(out))
    f = rep.fsdp
    if f is None:
        print("fsdp: NOT found")
        return False
    names = [u.unit for u in f.report.units]
    print(f"fsdp: units {names}, settings from the sidecar: {f.report.settings is not None}, "
          f"{len(f.report.steps)} steps, device {f.report.device_kind}")
    for u in f.report.units:
        print(f"  unit {u.unit or '(root)'}: {u.unsharded_bytes:,} bytes unsharded, fwd {u.fwd_compute_ms:.2f} ms, "
              f"bwd {u.bwd_compute_ms:.2f} ms, phases {sorted(u.phases)}")
    return names == ["", "0", "1", "2", "3"] and f.report.settings is not None and f.report.device_kind == "cuda"


def dataparallel_check(out: Path) -> bool:
    """nn.DataParallel over every GPU, traced with commprof.trace(): the four phases are found, with the
    parameter bytes broadcast and reduced, and DDP is estimated.  Compare the trace with tests/dp_trace.py."""
    import torch

    import commprof
    from commprof.workloads.demo import DEFAULTS, build_model

    model = build_model({**DEFAULTS, "width": 4096, "layers": 8}).cuda()
    train_traced(torch.nn.DataParallel(model), out, batch=512)
    rep = commprof.analyze(commprof.load(out))
    n_bytes = 4 * sum(p.numel() for p in model.parameters())
    for d in rep.dataparallel:
        print(f"dataparallel: devices {d.devices}, step {d.step_ms:.2f} ms, overhead {d.overhead_ms:.2f} ms, "
              f"DDP estimate {d.ddp_step_ms}")
        for ph in d.phases:
            print(f"  {ph.name}: {ph.calls_per_step:.1f} calls, {ph.bytes_per_step:,} bytes, host {ph.host_ms:.2f} ms,"
                  f" GPU {ph.gpu_ms:.2f} ms")
    if len(rep.dataparallel) != 1:
        print("dataparallel: NOT recognised")
        return False
    ph = {p.name: p for p in rep.dataparallel[0].phases}
    return ("Broadcast" in ph and ph["Broadcast"].bytes_per_step >= n_bytes and "ReduceAddCoalesced" in ph
            and len(rep.dataparallel[0].devices) == torch.cuda.device_count())


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "gpu-check-traces")))
