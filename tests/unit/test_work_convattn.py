"""The matrix work of convolutions, fused attention and grouped products (``reader.convattn``, ``reader.matmuls``):
from the shapes and concrete inputs torch records, on hand-built args and on a real torch.profiler trace of a small
convolutional network with attention, its count checked against the layers' own arithmetic."""

from __future__ import annotations

import math

import pytest

import commprof
from commprof.formats import keys as K
from commprof.reader.comm import classify as cl
from commprof.reader.matmuls import flops


def _args(dims: list, conc: list[str] | None = None) -> dict:
    out: dict = {K.A_INPUT_DIMS: dims}
    if conc is not None:
        out[K.A_CONCRETE] = conc
    return out


def _conv_conc(stride: str, pad: str, dil: str, transposed: str = "False", groups: str = "1") -> list[str]:
    return ["", "", "", stride, pad, dil, transposed, "[0, 0]", groups]


def test_a_convolutions_work_from_its_shapes_strides_and_padding():
    # as torch 2.13 records aten::convolution: input, weight, bias; stride, padding, dilation, transposed, ...
    x, w = [4, 3, 32, 32], [8, 3, 3, 3]
    assert flops("aten::convolution", _args([x, w, [8]], _conv_conc("[2, 2]", "[1, 1]", "[1, 1]"))) == \
        2 * 4 * 8 * 3 * 9 * 16 * 16  # out (32 + 2 - 2 - 1) // 2 + 1 = 16
    # groups: the weight's second dim is the input channels per group; dilation 2 widens a 3-kernel to 5
    assert flops("aten::convolution", _args([[4, 8, 16, 16], [16, 4, 3, 3], [16]],
                                            _conv_conc("[1, 1]", "[0, 0]", "[2, 2]", groups="2"))) == \
        2 * 4 * 16 * 4 * 9 * 12 * 12
    # a transposed convolution: the direct one's adjoint, over its input's positions
    assert flops("aten::convolution", _args([[4, 16, 12, 12], [16, 4, 2, 2], [4]],
                                            _conv_conc("[2, 2]", "[0, 0]", "[1, 1]", "True"))) == \
        2 * 4 * 16 * 4 * 4 * 12 * 12
    # conv1d with one stride for all dims
    assert flops("aten::convolution", _args([[2, 6, 100], [12, 6, 5], []], ["", "", "", "[1]", "[2]", "[1]", "False",
                                                                             "[0]", "1"])) == 2 * 2 * 12 * 6 * 5 * 100
    # no concrete inputs (an older torch), a zero stride, a kernel larger than the padded input, a rank mismatch
    for args in (_args([x, w, [8]]), _args([x, w, [8]], _conv_conc("[0, 0]", "[1, 1]", "[1, 1]")),
                 _args([[4, 3, 2, 2], w, [8]], _conv_conc("[1, 1]", "[0, 0]", "[1, 1]")),
                 _args([[4, 3, 32], w, [8]], _conv_conc("[1, 1]", "[0, 0]", "[1, 1]")), _args("x")):
        assert flops("aten::convolution", args) is None


def test_a_convolutions_backward_counts_the_gradients_its_mask_asks():
    conc = ["", "", "", "[16]", "[1, 1]", "[0, 0]", "[2, 2]", "False", "[0, 0]", "2", "[True, True, True]"]
    dims = [[4, 16, 12, 12], [4, 8, 16, 16], [16, 4, 3, 3]]  # grad_output, input, weight: no stride needed
    one = 2 * 4 * 16 * 4 * 9 * 12 * 12
    assert flops("aten::convolution_backward", _args(dims, conc)) == 2 * one
    first = conc[:10] + ["[False, True, True]"]  # the first layer: its input needs no gradient
    assert flops("aten::convolution_backward", _args(dims, first)) == one
    assert flops("aten::convolution_backward", _args(dims, conc[:10])) == 2 * one  # no mask recorded: both


def test_attention_and_grouped_products():
    q = [2, 4, 16, 8]
    fwd = 2 * 2 * 4 * 16 * 16 * (8 + 8)
    for name in ("aten::scaled_dot_product_attention", "aten::_scaled_dot_product_flash_attention",
                 "aten::_scaled_dot_product_efficient_attention", "aten::_scaled_dot_product_cudnn_attention"):
        assert flops(name, _args([q, q, q, []])) == fwd
    # cross-attention over 32 keys with values of another width; grouped-query keys with fewer heads
    assert flops("aten::scaled_dot_product_attention", _args([q, [2, 4, 32, 8], [2, 4, 32, 6]])) == \
        2 * 2 * 4 * 16 * 32 * (8 + 6)
    assert flops("aten::scaled_dot_product_attention", _args([[2, 8, 16, 8], q, q])) == 2 * 2 * 8 * 16 * 16 * 16
    back = "aten::_scaled_dot_product_flash_attention_for_cpu_backward"  # grad_out, q, k, v, out, logsumexp
    assert flops(back, _args([q, q, q, q, q, [2, 4, 16]])) == 2 * fwd
    assert flops("aten::scaled_dot_product_attention", _args([q, [2, 4, 16, 4], q])) is None  # q.k widths differ
    # grouped products (mixture of experts): 12 routed rows by 3 experts' [8, 16] weights, and the weights' gradient
    assert flops("aten::_grouped_mm", _args([[12, 8], [3, 8, 16], [3]])) == 2 * 12 * 8 * 16
    assert flops("aten::_grouped_mm", _args([[8, 12], [12, 16], [3]])) == 2 * 8 * 12 * 16
    assert flops("aten::_grouped_mm", _args([[3, 4, 8], [3, 8, 16]])) == 2 * 3 * 4 * 8 * 16
    assert flops("aten::_scaled_grouped_mm", _args([[3, 4, 8], [8, 48]])) == 2 * 4 * 8 * 48
    assert flops("aten::_grouped_mm", _args([[12, 8], [3, 9, 16]])) is None
    for name in ("aten::convolution", "aten::convolution_backward", "aten::_grouped_mm",
                 "aten::_scaled_dot_product_flash_attention_for_cpu_backward"):
        assert cl.cpu_kind(name) == cl.MATMUL


def test_a_real_traces_convolutions_and_attention_are_counted(tmp_path):
    """A strided convolution, a grouped dilated one, a transposed one, a linear head and attention, traced by
    torch.profiler with record_shapes over two active steps: each step's count is the layers' own arithmetic (the
    first convolution's input needs no gradient; each other layer's backward computes two products)."""
    torch = pytest.importorskip("torch")
    from torch.profiler import ProfilerActivity, profile, schedule

    nn = torch.nn
    c1, c2 = nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(8, 16, 3, groups=2, dilation=2)
    up, head = nn.ConvTranspose2d(16, 4, 2, stride=2), nn.Linear(4 * 24 * 24, 10)
    x, q = torch.randn(4, 3, 32, 32), torch.randn(2, 4, 16, 8, requires_grad=True)

    def step() -> None:
        y = up(torch.relu(c2(torch.relu(c1(x)))))
        a = nn.functional.scaled_dot_product_attention(q, q, q)
        (head(y.flatten(1)).sum() + a.sum()).backward()

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, schedule=schedule(wait=0, warmup=1, active=2),
                 on_trace_ready=lambda p: p.export_chrome_trace(str(tmp_path / "rank0.json"))) as prof:
        for _ in range(3):
            step()
            prof.step()
    conv1 = 2 * 4 * 8 * 3 * 9 * 16 * 16  # forward, and the weights' gradient only
    conv2 = 2 * 4 * 16 * 4 * 9 * 12 * 12  # 16 x 16 in, a 5-wide dilated kernel: 12 x 12 out
    convt = 2 * 4 * 16 * 4 * 4 * 12 * 12  # over its 12 x 12 input
    linear = 2 * 4 * 2304 * 10
    attention = 2 * 2 * 4 * 16 * 16 * 16
    expected = 2 * conv1 + 3 * conv2 + 3 * convt + 3 * linear + 3 * attention
    got = commprof.load(tmp_path).ranks[0].matrix_flops
    assert len(got) == 2 and all(math.isclose(f, expected) for _s, f in got), (got, expected)


def test_an_outside_testers_conv_net_trace_reads_its_models_count():
    """tests/data/real/ddp_gloo_conv_loopback (an outside tester's 2-rank DDP conv net, torch 2.13): 4 padded 3x3
    convolutions (3-32-64 channels at 32 x 32, 64-128-128 at 16 x 16), Linear(8192, 1024), Linear(1024, 10), batch
    16; the first convolution's input needs no gradient.  Before convolutions were counted it read the linear
    layers' 0.81 GFLOP alone."""
    from conftest import ROOT

    b = 16
    conv = [2 * b * 32 * 3 * 9 * 32 * 32, 2 * b * 64 * 32 * 9 * 32 * 32, 2 * b * 128 * 64 * 9 * 16 * 16,
            2 * b * 128 * 128 * 9 * 16 * 16]
    linear = 2 * b * 8192 * 1024 + 2 * b * 1024 * 10
    model = 2 * conv[0] + 3 * sum(conv[1:]) + 3 * linear
    run = commprof.load(ROOT / "tests" / "data" / "real" / "ddp_gloo_conv_loopback" / "traced_bucket25")
    for rt in run.ranks:
        assert len(rt.matrix_flops) == 3 and all(f == pytest.approx(model, rel=1e-9) for _s, f in rt.matrix_flops)


def test_what_the_trace_does_not_say_is_not_counted():
    """A convolution's backward without its transposed flag (over grad_output's positions or the input's: 4x apart
    at stride 2), and args a JSON reader refuses (a number beyond a float's range), read as no count, not a crash."""
    dims = [[4, 4, 24, 24], [4, 16, 12, 12], [16, 4, 2, 2]]
    assert flops("aten::convolution_backward", _args(dims)) is None
    assert flops("aten::convolution_backward", _args(dims, ["", "", "", "[4]", "[2, 2]", "[0, 0]", "[1, 1]", "True",
                                                            "[0, 0]", "1", "[True, True, True]"])) == \
        2 * 2 * 4 * 16 * 4 * 4 * 12 * 12
    from commprof.reader.decode.events import args_of, product_shapes_of

    assert args_of(b'{"Concrete Inputs": ["", 1e999]}') == {}
    assert product_shapes_of([b'{"Input Dims": [[2, 3], [3, 4]], "Concrete Inputs": ["", ""]}']) == \
        [{K.A_INPUT_DIMS: [[2, 3], [3, 4]], K.A_CONCRETE: ["", ""]}]
