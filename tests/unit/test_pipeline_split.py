"""The partition finding on hand-built stage reports: "balanced" only where no split is better; a better split that
gains too little is named with its gain and the one layer that holds the slowest stage (a user's 2-stage pipeline
whose stage 1 held one slow layer read "balanced" beside a better split in summary.json)."""

from __future__ import annotations

from commprof.analysis.findings import pipeline_findings
from commprof.analysis.pipeline.stages import Layer, Partition, PipelineReport


def _report(cur: Partition, best: Partition, heavy_ms: float) -> PipelineReport:
    layers = tuple(Layer(str(i), 0 if i < 4 else 1, 1.0, 2.0, 1 << 16) for i in range(8))
    layers += (Layer("slow", 1, heavy_ms / 3, 2 * heavy_ms / 3, 1 << 16),)
    return PipelineReport(layers=layers, stages=(), current=cur, best=best, link_bps=4e8)


def test_a_split_is_balanced_only_where_none_is_better():
    same = Partition((4, 5), 30.0, 200.0)
    (f,), advice = pipeline_findings(_report(same, same, 15.0))
    assert advice == [] and "is balanced" in f.text


def test_a_better_split_under_the_bar_is_named_with_the_layer_that_holds_it():
    cur, best = Partition((4, 5), 96.58, 420.2), Partition((8, 1), 91.23, 404.1)
    (f,), advice = pipeline_findings(_report(cur, best, 91.2))
    assert advice == [] and "balanced" not in f.text
    assert "split [8, 1] would bring the slowest stage from 96.58 to 91.23 ms" in f.text
    assert "420.2 to 404.1 ms (less than 5%: not advised)" in f.text
    assert "held by layer 'slow' of stage 1 (91.20 ms per micro-batch of it), which no split divides" in f.text
    (g,), _ = pipeline_findings(_report(cur, best, 10.0))  # no single layer holds it: not said
    assert "held by layer" not in g.text


def test_a_split_that_gains_enough_is_advised():
    cur, best = Partition((7, 1), 120.0, 296.3), Partition((4, 4), 70.0, 230.5)
    findings, (a,) = pipeline_findings(_report(cur, best, 10.0))
    assert findings == [] and a.knob == "partition" and a.value == [4, 4] and a.predicted_step_ms == 230.5


def test_the_layer_named_is_in_the_slowest_stage_and_a_longer_step_is_no_gain():
    """Layers of 3, 3, 3, 3 and 5 ms, best split (3, 2): the slowest stage (9 ms) holds three 3 ms layers, not the
    5 ms one, which is not named; a split whose simulated step is longer is no gain at all."""
    layers = tuple(Layer(str(i), 0 if i < 3 else 1, 1.0, 2.0, 1 << 16) for i in range(4)) + (
        Layer("big", 1, 5.0 / 3, 10.0 / 3, 1 << 16),)
    rep = PipelineReport(layers=layers, stages=(), current=Partition((2, 3), 11.0, 400.0),
                         best=Partition((3, 2), 9.0, 390.0), link_bps=4e8)
    (f,), _ = pipeline_findings(rep)
    assert "split [3, 2] would bring the slowest stage from 11.00 to 9.00 ms" in f.text and "held by" not in f.text
    longer = PipelineReport(layers=layers, stages=(), current=Partition((2, 3), 11.0, 400.0),
                            best=Partition((3, 2), 9.0, 401.0), link_bps=4e8)
    (g,), _ = pipeline_findings(longer)
    assert "is balanced" in g.text and "401" not in g.text
