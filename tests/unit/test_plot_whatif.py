"""The what-if plot draws every prediction's band: shaded along the bucket sizes, whiskers on the bars, the traced
settings' band a span behind them (the committed example run, DDP; the FSDP2 CPU run)."""

from __future__ import annotations

import numpy as np
import pytest
from test_plot_scale import _drawn

from commprof import analyze, load
from commprof.render.plot import whatif as plot
from conftest import EXAMPLE, real


def _ys(coll: dict) -> np.ndarray:
    return np.array([v[1] for p in coll.get("paths", []) for v in p])


def test_ddp_bands_are_drawn(monkeypatch):
    rep = analyze(load(EXAMPLE))
    got = _drawn(monkeypatch, plot, plot.whatif, rep)
    left, right = got["axes"]
    caps = [w for w in rep.advisor.whatifs if w.knob == "bucket_cap_mb"]
    # the shaded band along the bucket sizes reaches each cap's low and high end
    shade = _ys(next(c for c in left["collections"] if c["type"] in ("PolyCollection", "FillBetweenPolyCollection")))
    # (the traced cap's own band spans the drift between runs too: its whisker, not the shade)
    assert shade.min() == pytest.approx(min(w.range_ms[0] for w in caps[1:]), abs=0.01)
    assert shade.max() == pytest.approx(max(w.range_ms[1] for w in caps[1:]), abs=0.01)
    assert "band" in left["legend"]
    # whiskers on the bars: one segment per other what-if, from its low to its high end
    others = [w for w in rep.advisor.whatifs if w.knob != "bucket_cap_mb"]
    segs = next(c for c in right["collections"] if c["type"] == "LineCollection")["paths"]
    assert sorted((round(s[0][0], 1), round(s[1][0], 1)) for s in segs) == sorted(
        (round(w.range_ms[0], 1), round(w.range_ms[1], 1)) for w in others)
    assert "its band" in right["legend"] and "whiskers" in right["xlabel"]


def test_fsdp_bands_are_drawn(monkeypatch):
    rep = analyze(load(real("fsdp2_gloo_cpu")))
    f = rep.fsdp
    assert f is not None and f.whatifs and f.baseline_range_ms is not None
    got = _drawn(monkeypatch, plot, plot.whatif, rep)
    ax = got["axes"][0]
    segs = next(c for c in ax["collections"] if c["type"] == "LineCollection")["paths"]
    assert sorted((round(s[0][0], 1), round(s[1][0], 1)) for s in segs) == sorted(
        (round(w.range_ms[0], 1), round(w.range_ms[1], 1)) for w in f.whatifs)
    lo, hi = f.baseline_range_ms
    assert any(p[0] == pytest.approx(lo, abs=0.01) and p[2] == pytest.approx(hi - lo, abs=0.01)
               for p in ax["patches"])  # the traced settings' band, a span behind the bars
    assert "their band" in ax["xlabel"] and "whiskers" in ax["xlabel"]
