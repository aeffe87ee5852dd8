"""The work of a real convolutional job (tests/e2e/cnn_job.py: 2-rank gloo DDP, rank 1 on 48 x 48 images where rank
0 has 32 x 32): the convolutions' recorded shapes and strides give rank 1 2.25x its peer's work, so the root cause
(or, where this run's jitter hides it, the lead) says it was given more work, not that it is slower on the same
work, as the linear head's products alone (equal on both ranks after global pooling) read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import commprof
from commprof.render.summary import summary

pytestmark = pytest.mark.slow
JOB = Path(__file__).with_name("cnn_job.py")


def _flops(side: int, batch: int = 16) -> float:
    """The network's FLOPs per step at this image side: forward, the weights' gradients, and the input's gradient
    of every layer but the first."""
    c1 = 2 * batch * 16 * 3 * 9 * side * side  # 3 -> 16, 3x3, padding 1
    c2 = 2 * batch * 32 * 16 * 9 * (side // 2) ** 2  # 16 -> 32, 3x3, stride 2, padding 1
    head = 2 * batch * 32 * 10
    return 2 * c1 + 3 * c2 + 3 * head


def test_a_rank_given_larger_images_is_told_to_have_more_work(tmp_path: Path):
    subprocess.run([sys.executable, str(JOB), str(tmp_path)], check=True, timeout=300)
    run = commprof.load(tmp_path)
    for rt in run.ranks:
        side = 48 if rt.rank == 1 else 32
        assert rt.matrix_flops and all(f == pytest.approx(_flops(side), rel=1e-9) for _s, f in rt.matrix_flops)
    rep = commprof.analyze(run)
    rc = rep.root_cause
    assert rc is not None and rc.work is not None, rep.findings[0].text
    ratio = _flops(48) / _flops(32)
    assert ratio == pytest.approx(2.25, rel=1e-3) and rc.work.ratio == pytest.approx(ratio, rel=1e-6)
    assert rc.work.kind == "data" and rc.work.peers == 1
    text = rep.findings[0].text
    if rc.ranks:
        assert rc.ranks == (1,) and "given more work than its DP peers" in text, text
    else:
        assert "A lead: rank 1, with " in text and "was given more work than its DP peers" in text, text
    assert "on no more work" not in text, text
    ranks = {r["rank"]: r["matrix_gflop_per_step"] for r in summary(rep)["ranks"]}
    assert ranks[1] == pytest.approx(_flops(48) / 1e9, rel=1e-3) and ranks[0] == pytest.approx(_flops(32) / 1e9,
                                                                                                 rel=1e-3)
