"""commprof registers its own recording hook around the user's: DDP checks that one, not the user's, so a hook torch
refuses (bf16_compress_hook without NCCL 2.10+) trained under commprof.trace(comm_hook=...) on CPU; it is checked as
DDP would (a single-process gloo group, really started)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

from commprof.capture.ddp import DDPRecorder


@pytest.fixture
def ddp(tmp_path: Path):
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        yield torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 4))
    finally:
        dist.destroy_process_group()


def test_a_hook_torch_refuses_is_refused_the_same_way(ddp):
    with pytest.raises(TypeError) as err:
        ddp.register_comm_hook(None, default_hooks.bf16_compress_hook)
    with pytest.raises(TypeError, match=str(err.value)[:40]):
        DDPRecorder(ddp, comm_hook=default_hooks.bf16_compress_hook).install()


def test_a_hook_torch_accepts_is_recorded(ddp):
    rec = DDPRecorder(ddp, comm_hook=default_hooks.fp16_compress_hook)
    assert rec.install() is None and rec.installed


def test_compiled_autograds_python_reducer_is_not_recorded_and_a_compiled_model_is_unwrapped(ddp):
    """Under torch._dynamo.config.optimize_ddp = "python_reducer" DDP skips its reducer and buckets (the compiler
    fuses the all-reduces, calling the registered hooks per gradient): nothing is recorded, it says why, and the
    user's own hook is registered as it would be without commprof.  What torch.compile returns is unwrapped to the
    module it compiled, for the recorder and for ``modules=``."""
    from commprof.capture.modules import named_modules
    from commprof.capture.options import compiled_inner

    ddp._use_python_reducer = True  # as DDP sets it under that config
    try:
        said = DDPRecorder(ddp).install()
        assert said is not None and "Python reducer" in said and "comm_hook" not in said
        before = len(getattr(ddp, "_comm_hooks", []))
        said = DDPRecorder(ddp, comm_hook=default_hooks.fp16_compress_hook).install()
        assert said is not None and "your comm_hook is registered on the model" in said
        hooks = getattr(ddp, "_comm_hooks", None)  # where this torch keeps the hooks that reducer calls
        assert hooks is None or len(hooks) == before + 1
    finally:
        ddp._use_python_reducer = False
    compiled = torch.compile(ddp, backend="eager")
    assert compiled_inner(compiled) is ddp and compiled_inner(ddp) is ddp and compiled_inner(None) is None
    seq = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    assert [n for n, _ in named_modules(torch.compile(seq, backend="eager"))] == ["0", "1"]
