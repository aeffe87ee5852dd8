"""fp16 compression where gloo's all-reduces are CPU work: ranks of one host and one network namespace.

Measured on the README's demo (2 ranks on one 2-core AMD EPYC, loopback gloo): the traced fp32 run's replay
predicted the fp16 hook 25-30% faster, two of four runs advised it, and with the hook the step was 4-21% slower
in 9 of 10 pairs (docs/advisor.md; benchmarks/bench_demo_bands.py).  Over loopback the bytes never cross a link;
gloo sums half precision on the CPU element by element and the hook's work slows the backward pass beside it,
which a run without the hook cannot show.  No prediction then, a finding that says why wherever communication is
exposed (not only where the link model's point estimate would advise it: that came and went between two runs of the
demo); over a link (other namespaces, other hosts) nothing changes."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import numpy as np

from commprof.analysis.ddp.advice import WhatIf, _band, _compression
from commprof.analysis.ddp.rates import ASSUMED, OpRates
from commprof.analysis.ddp.whatif import Scenario, cpu_bound_transfers, one_stack_host, replay
from commprof.analysis.uncertainty.maths import Noise, band
from commprof.units import MiB

RATES = OpRates("cpu", 4e9, 4e9, sources={"pass": ASSUMED, "fresh": ASSUMED, "products": ASSUMED})


def _run(*sides: tuple[str | None, str | None] | None, world_size: int | None = None) -> Any:
    ranks = [SimpleNamespace(sidecar=None if s is None else SimpleNamespace(host=s[0], net_ns=s[1])) for s in sides]
    return SimpleNamespace(ranks=ranks, world_size=world_size or len(sides))


def test_one_stack_needs_every_rank_on_one_host_and_one_namespace():
    assert one_stack_host(_run(("vm", "b1/7"), ("vm", "b1/7"))) == "vm"
    assert one_stack_host(_run(("vm", "b1/7"), ("vm", "b1/8"))) is None  # two namespaces: the netns benchmarks' veth
    assert one_stack_host(_run(("vm", "b1/7"), ("vm", "b2/7"))) is None  # two boots: cloned hosts of one name
    assert one_stack_host(_run(("a", "b1/7"), ("b", "b1/7"))) is None  # two hosts
    assert one_stack_host(_run(("vm", None), ("vm", None))) is None  # older sidecars: not recorded, not assumed
    assert one_stack_host(_run(("vm", "b1/7"), None)) is None  # a rank without a sidecar
    assert one_stack_host(_run(("vm", "b1/7"), ("vm", "b1/7"), world_size=4)) is None  # ranks not loaded


def test_plain_traces_one_host_name_on_every_rank_stands_for_one_stack():
    # no sidecar records a namespace: the traces' host_name (torch >= 2.5) is the only sign; containers have names of
    # their own.  tests/data/real/ddp_gloo_cut_step (2 ranks over 127.0.0.1) was advised fp16 before this rule
    def plain(*hosts: str | None) -> Any:
        return SimpleNamespace(ranks=[SimpleNamespace(sidecar=None, host=h) for h in hosts], world_size=len(hosts))

    assert one_stack_host(plain("vm", "vm")) == "vm, by the traces' host name"
    assert one_stack_host(plain("a", "b")) is None
    assert one_stack_host(plain("vm", None)) is None and one_stack_host(plain(None, None)) is None


def _scenario(host: str | None, backend: str = "gloo") -> Scenario:
    """Eight 4 MiB gradients at 100 MB/s: the all-reduces are most of the step, fp16's halving would pay."""
    n = 8
    return Scenario(rank=0, names=tuple(f"p{i}" for i in range(n)), sizes=np.full(n, 4 * MiB, dtype=float),
                    ready_ns=np.linspace(10e6, 40e6, n), tail_ns=5_000_000, profiled_step_ns=60_000_000,
                    unprofiled_step_ns=None, cap_bytes=4 * MiB, first_bucket_bytes=None, alpha_s=1e-4,
                    beta_bps=1e8, rates=RATES, world_size=2, backend=backend, one_stack_host=host)


def _advise(sc: Scenario) -> tuple[list[WhatIf], list[Any], list[Any]]:
    def predict(cap: int, comp: str | None):
        return replay(sc, cap, comp, 1.0)
    base = predict(sc.cap_bytes, None)
    whatifs: list[WhatIf] = []
    advice: list[Any] = []
    findings: list[Any] = []
    _compression([sc], predict, base, base, sc.cap_bytes / MiB, whatifs, advice, findings, margin=0.05)
    return whatifs, advice, findings


def test_over_a_link_fp16_is_advised_on_one_stack_it_is_not_predicted():
    whatifs, advice, _ = _advise(_scenario(None))
    assert [a.value for a in advice if a.knob == "comm_hook"] == ["fp16_compress_hook"]
    assert any(w.value == "fp16_compress_hook" for w in whatifs)

    whatifs, advice, findings = _advise(_scenario("vm"))
    assert not any(a.value == "fp16_compress_hook" for a in advice)
    assert not any(w.value == "fp16_compress_hook" for w in whatifs)  # no prediction it cannot make
    text = next(f.text for f in findings if "fp16_compress_hook" in f.text)
    assert "is not predicted" in text and "one network stack (vm)" in text and "Time a few steps" in text


def test_the_finding_does_not_hang_on_the_link_models_point_estimate():
    """Two runs of one job must say the same: the finding stands where the link model would gain nothing too."""
    fast = replace(_scenario("vm"), beta_bps=1e12)  # the all-reduces hide behind the backward: fp16 gains ~0
    base = replay(fast, fast.cap_bytes, None, 1.0)
    assert replay(fast, fast.cap_bytes, "fp16", 1.0).step_ns > base.step_ns * 0.95
    whatifs, advice, findings = _advise(fast)
    assert not any(w.value == "fp16_compress_hook" for w in whatifs) and not advice
    assert ["is not predicted" in f.text for f in findings if "fp16_compress_hook" in f.text] == [True]


def test_the_band_spans_both_outcomes_the_run_cannot_tell_apart():
    nz = Noise()
    w = WhatIf("gradient_accumulation", 4, 50.0, 5.0, alt_ms=40.0)
    low, high = _band(w, nz, 3.0, changed=True)
    assert low == band(40.0, nz, 3.0)[0] and high == band(50.0, nz, 3.0)[1]
    assert _band(replace(w, alt_ms=None), nz, 3.0, changed=True) == band(50.0, nz, 3.0)


def test_only_gloo_is_cpu_bound():
    assert cpu_bound_transfers([_scenario("vm")]) == "vm"
    assert cpu_bound_transfers([_scenario("vm", backend="nccl")]) is None  # NCCL reduces fp16 on the GPU
    assert cpu_bound_transfers([_scenario(None)]) is None
    assert cpu_bound_transfers([]) is None
