"""DDP with find_unused_parameters=True never rebuilds its buckets, so its logging data has no
``rebuilt_per_bucket_param_indices`` and no layout was recorded (a user's branchy model: no bucket table, a what-if
refused, "static_graph" eligibility claimed on no layout).  The initial layout comes from ``bucket_sizes``: DDP
fills its buckets with the parameters in reverse order.  The sizes below are torch 2.13's for 6 x Linear(256, 256)
at bucket_cap_mb=0.5 (measured with ``_get_ddp_logging_data()``)."""

from __future__ import annotations

from commprof.capture.ddp import initial_groups


def _linears(n: int, width: int = 256) -> list[tuple[str, int, str, list[int]]]:
    out = []
    for i in range(n):
        out += [(f"{i}.weight", width * width, "float32", [width, width]), (f"{i}.bias", width, "float32", [width])]
    return out


def test_the_initial_layout_is_cut_from_the_reversed_parameters_by_the_bucket_sizes():
    params = _linears(6)  # indices: 0 = 0.weight, 1 = 0.bias, ..., 11 = 5.bias
    got = initial_groups("1024, 526336, 526336, 525312", params)
    assert got == [[11], [10, 9, 8, 7], [6, 5, 4, 3], [2, 1, 0]]  # bucket 0: the last bias, ready first


def test_sizes_that_do_not_tile_the_parameters_give_no_layout():
    params = _linears(6)
    assert initial_groups("1024, 526336", params) is None  # parameters left over
    assert initial_groups("1000, 526336, 526336, 526336", params) is None  # a size cut inside a parameter
    assert initial_groups("", params) is None and initial_groups("x, 1", params) is None


def test_the_inferred_cap_is_said_plainly():
    """'inferred from the 1 bucket sizes ... any cap in (3.03, 1.07e+09] MB': one bucket, no upper bound."""
    from commprof.analysis.ddp.view import infer_cap

    cap, _first, how = infer_cap([10], [4_223_016])
    assert "the one bucket's size" in how and "e+" not in how and "any cap above" in how, how
