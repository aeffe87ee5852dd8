"""Operation costs for the what-ifs: thin products recognised in a trace, and rates pooled with their source."""

from __future__ import annotations

import pytest

import commprof
from commprof.analysis.ddp.rates import ASSUMED, PROBE, TRACE, op_rates
from commprof.reader.products import classify


def _bmm(a, b, sa, sb):
    return {"Input Dims": [a, b, []], "Input Strides": [sa, sb, []]}


def test_the_three_products_of_powersgd_are_told_apart_by_their_strides():
    # torch's powerSGD_hook on a 1 x 400 x 300 view: P = M Q, Q = Mᵀ P (a transposed view), M = P Qᵀ
    assert classify(_bmm([1, 400, 300], [1, 300, 4], [120000, 300, 1], [1200, 4, 1])) == ("mq", 400, 300, 4, 1)
    assert classify(_bmm([1, 300, 400], [1, 400, 4], [120000, 1, 300], [1600, 4, 1])) == ("mtp", 400, 300, 4, 1)
    assert classify(_bmm([1, 400, 4], [1, 4, 300], [1600, 4, 1], [1200, 1, 4])) == ("pqt", 400, 300, 4, 1)
    assert classify(_bmm([2, 400, 4], [2, 4, 300], [1600, 4, 1], [1200, 1, 4])) == ("pqt", 400, 300, 4, 2)
    # attention-like products are not thin; without strides a square P = M Q and Q = Mᵀ P look alike
    assert classify(_bmm([8, 512, 64], [8, 64, 512], [32768, 64, 1], [32768, 512, 1])) is None
    assert classify({"Input Dims": [[1, 1024, 1024], [1, 1024, 4], []]}) is None
    assert classify(_bmm([1, 10, 20], [1, 20, 4], [200, 20, 1], [80, 4, 1])) is None  # too small to measure


def test_rates_from_a_traced_powersgd_run_on_the_amd_host():
    """The AMD EPYC run with PowerSGD (rank 1 ran the hook's callbacks on its main thread, so all three products
    are in its trace): Q = Mᵀ P measured about four times P = M Q, as the report says the host did."""
    from conftest import real
    r = op_rates(commprof.load(real("netns_500mbit_amd_epyc") / "traced_powersgd4_bucket200"))
    assert r.sources == {"pass": TRACE, "fresh": TRACE, "products": TRACE}
    mq, mtp = r.products[("mq", 1024, 1024, 4)], r.products[("mtp", 1024, 1024, 4)]
    assert mq == pytest.approx(1.7e6, rel=0.1) and mtp == pytest.approx(6.7e6, rel=0.1)
    # a fresh bucket-sized tensor (clone, a - b) costs several in-place passes there
    assert r.fresh_bps < 0.3 * r.pass_bps
    # a shape not measured is scaled from the nearest measured one of the same kind
    ns, measured = r.product_ns("mtp", 512, 1024, 4)
    assert measured and ns == pytest.approx(mtp / 2)


def test_a_run_without_measurements_says_its_rates_are_assumed():
    from conftest import real
    r = op_rates(commprof.load(real("dlrm_8gpu_v100")))
    assert r.sources == {"pass": ASSUMED, "fresh": ASSUMED, "products": ASSUMED}
    assert r.product_ns("mq", 1024, 1024, 4)[1] is False


def _with_probe(tmp_path, src, rates):
    import json
    import shutil

    for f in src.iterdir():
        shutil.copy(f, tmp_path / f.name)
    for side in tmp_path.glob("rank*.commprof.json"):
        doc = json.loads(side.read_text())
        doc["rates"] = rates
        side.write_text(json.dumps(doc))
    return commprof.load(tmp_path)


def test_the_runs_own_operators_come_first_and_the_probe_fills_in(tmp_path):
    from conftest import real
    probe = {"device": "cpu", "buffer_bytes": 1 << 20, "pass_bps": 1e9, "fresh_bps": 5e8,
             "products": [["mq", 1024, 1024, 4, 1000.0], ["mtp", 512, 512, 2, 300.0], ["bad"]],
             "orthogonalize": [[1024, 4, 50.0]], "wall_ms": 12.0}
    r = op_rates(_with_probe(tmp_path, real("netns_500mbit_amd_epyc") / "traced_powersgd4_bucket200", probe))
    assert r.sources == {"pass": TRACE, "fresh": TRACE, "products": "trace and probe"}
    assert r.products[("mq", 1024, 1024, 4)] == pytest.approx(1.7e6, rel=0.1)  # the hook's own, not the probe's
    assert r.products[("mtp", 512, 512, 2)] == 300.0 and r.orthogonalize_ns(1024, 4) == 50.0
    # the default run did no PowerSGD and wrote no fresh bucket-sized tensor: those come from the probe
    (tmp_path / "d").mkdir()
    d = op_rates(_with_probe(tmp_path / "d", real("netns_500mbit_amd_epyc") / "traced_default_bucket25", probe))
    assert d.sources == {"pass": TRACE, "fresh": PROBE, "products": PROBE}
    assert d.fresh_bps == 5e8 and d.products[("mq", 1024, 1024, 4)] == 1000.0
