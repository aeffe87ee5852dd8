"""compare's text: a straggler's status with its amounts (a user read "rank 1: still there" for a rank whose
lateness fell from 10.8 to 2.9 ms), and the step's basis as given (--step-ms is not "the slowest rank's median")."""

from __future__ import annotations

from commprof.analysis.compare import Side, StragglerChange
from commprof.render.compare import _straggler, headline


def test_a_straggler_line_carries_the_wait_it_caused_and_its_lateness():
    assert _straggler(StragglerChange(1, 10.846, 2.875, 9.5, 2.29)) == \
        "still there: caused 9.50 -> 2.29 ms of wait per step (late 10.85 -> 2.88 ms)"
    assert _straggler(StragglerChange(2, None, 3.0, None, 1.0)).startswith("appeared: caused - -> 1.00 ms")
    assert _straggler(StragglerChange(3, 5.0, None, 4.0, None)).startswith("went away: caused 4.00 -> - ms")


def _side(untraced: float | None, steps: int | None, exposed: float, rank: int) -> Side:
    return Side(path="x", world_size=2, ranks=(0, 1), step_ms=60.0, untraced_step_ms=untraced,
                exposed_comm_ms=exposed, compute_ms=20.0, untraced_steps=steps, exposed_rank=rank)


class _C:  # the fields headline reads
    def __init__(self, before: Side, after: Side):
        self.before, self.after, self.advice_check, self.verdict = before, after, (), None


def test_the_step_line_names_its_basis_and_the_exposed_line_its_ranks():
    given = headline(_C(_side(59.6, None, 17.4, 1), _side(17.5, None, 6.5, 0)))  # type: ignore[arg-type]
    step = next(line for line in given if line.startswith("Step"))
    assert step.startswith("Step (outside the profiler, as given with --step-ms): 59.60 ms -> 17.50 ms")
    exposed = next(line for line in given if line.startswith("Exposed"))
    assert exposed.endswith("17.40 ms (rank 1) -> 6.50 ms (rank 0)")
    timed = headline(_C(_side(59.6, 5, 1.0, 0), _side(17.5, 5, 1.0, 0)))  # type: ignore[arg-type]
    assert any(line.startswith("Step (outside the profiler, slowest rank's median)") for line in timed)


def test_a_disturbed_run_is_said_beside_the_verdict():
    """A user compared a run beside another session's load (its report: "other work used 46% of the ranks' CPUs") and
    read +52% with no word of it."""
    from types import SimpleNamespace

    from commprof.render.compare import verdict_line

    v = SimpleNamespace(change="slower", delta_ms=28.97, ci_ms=(5.0, 52.9), confidence=0.95, runs=(1, 1),
                        drift_sd_pct=5.0, basis="")
    c = SimpleNamespace(verdict=v, no_effect=(), disturbed=(("AFTER", "other work used 46% of the ranks' CPUs"),))
    line = verdict_line(c)  # type: ignore[arg-type]
    assert line is not None and line.startswith("Verdict: slower: mean step +29.0 ms")
    assert "AFTER was disturbed (other work used 46% of the ranks' CPUs): a change may be that disturbance's" in line
    assert "disturbed" not in (verdict_line(SimpleNamespace(verdict=v, no_effect=(), disturbed=())) or "")  # type: ignore[arg-type]


def test_a_withheld_advice_says_which_step_is_current():
    """'a band that reaches the current step (682.7 ms)' beside advice from 686.4 ms: the measured step, named."""
    from commprof.analysis.section import Advice
    from commprof.analysis.uncertainty.bands import withheld
    from commprof.analysis.uncertainty.maths import Noise

    a = Advice(knob="bucket_cap_mb", value=4, baseline_step_ms=686.4, predicted_step_ms=650.0,
               predicted_range_ms=(600.0, 700.0), why="")
    assert "current step (682.7 ms, the replay's 686.4 ms less its over-prediction of the traced run, +0.5%)" in \
        withheld(a, Noise(), 0.54, 682.7).text
    assert "current step (686.4 ms): the gain" in withheld(a, Noise(), None, 686.4).text


def test_the_current_step_is_the_baseline_less_the_models_over_prediction_on_its_own_scale():
    """The check's measured step is a profiled one: where the profiled steps' inputs were smaller than those outside
    the profiler, it (111.5 ms) was taken for the current step beside predictions calibrated on 154.3 ms."""
    from commprof.analysis.section import Advice
    from commprof.analysis.uncertainty.bands import banded_advice
    from commprof.analysis.uncertainty.maths import Noise

    a = Advice(knob="reshard_after_forward", value=False, baseline_step_ms=154.3, predicted_step_ms=139.0,
               predicted_range_ms=(120.0, 150.0), why="")
    kept, dropped = banded_advice([a], Noise(), -0.1)
    assert kept and not dropped  # 150 < 154.3: the model under-predicts the traced run, nothing taken off
    kept, dropped = banded_advice([a], Noise(), 5.0)
    assert not kept and "current step (147.0 ms, the replay's 154.3 ms less its" in dropped[0].text  # 154.3 / 1.05
    kept, dropped = banded_advice([a], Noise(), None)  # no check: the baseline
    assert kept and not dropped
    # a step now under the baseline (a replay that cannot reach it) is the current step
    kept, dropped = banded_advice([a], Noise(), 0.0, now_ms=140.0)
    assert not kept and "current step (140.0 ms, the step as it is now, under the replay's 154.3 ms)" in dropped[0].text


def test_no_detectable_change_says_the_change_this_pair_could_tell():
    """Two disturbed runs with +31% between them read "one run per side tells only a change beyond ~14%" (the assumed
    drift's floor) beside an interval of about ±30%: the line quotes the pair's own interval where it is wider."""
    from types import SimpleNamespace

    from commprof.render.compare import verdict_line

    def line(ci: tuple[float, float]) -> str:
        v = SimpleNamespace(change="no detectable change", delta_ms=19.5, ci_ms=ci, confidence=0.95, runs=(1, 1),
                            drift_sd_pct=5.0, basis="")
        c = SimpleNamespace(verdict=v, no_effect=(), disturbed=(), before=_side(65.0, 5, 1.0, 0))
        return verdict_line(c) or ""  # type: ignore[arg-type]

    wide = line((-0.3, 39.2))
    assert "this pair tells only a change beyond ~30% of the step" in wide and "step-to-step spread" in wide
    quiet = line((-2.0, 16.0))  # within the drift's floor: the floor, no spread named
    assert "this pair tells only a change beyond ~14% of the step" in quiet and "spread" not in quiet


def test_a_difference_where_the_setting_changed_nothing_is_called_the_runs_drift():
    """bucket_cap_mb 25 -> 100 on a model whose gradients fit one bucket either way read "faster ... (-18.2 to -1.1
    ms); bucket_cap_mb changed nothing the runs can see": the difference is then the runs' own, beyond the drift."""
    from types import SimpleNamespace

    from commprof.render.compare import verdict_line

    def line(change: str, runs: tuple[int, int]) -> str:
        v = SimpleNamespace(change=change, delta_ms=-9.7, ci_ms=(-18.2, -1.1), confidence=0.95, runs=runs,
                            drift_sd_pct=5.0, basis="")
        c = SimpleNamespace(verdict=v, no_effect=("bucket_cap_mb",), disturbed=(), before=_side(30.0, 5, 1.0, 0))
        return verdict_line(c) or ""  # type: ignore[arg-type]

    one = line("faster", (1, 1))
    assert "bucket_cap_mb changed nothing the runs can see, so this difference is how far runs of this job land " \
           "apart here, not the setting's effect, and more than the 5% drift between runs assumed" in one
    assert "the drift the repeats measured" in line("faster", (3, 3))
    assert "land apart" not in line("no detectable change", (1, 1))


def test_parallelism_advice_is_checked_against_what_after_ran():
    """Every FSDP2 run advised "parallelism = ddp", and compare answered "whether AFTER applied parallelism is not
    recorded in its files" beside its own "fsdp_mesh: 2 -> None" and "bucket_cap_mb: None -> 25.0"."""
    from commprof.analysis.compare import _applied

    assert _applied("parallelism", "ddp", {"parallelism": "ddp"}) == (True, "")
    assert _applied("parallelism", "ddp", {"parallelism": "fsdp2"}) == (False, "")
    assert _applied("parallelism", "fsdp2", {"parallelism": "fsdp2"}) == (True, "")
    assert _applied("parallelism", "DistributedDataParallel", {"parallelism": "ddp"}) == (True, "")
    assert _applied("parallelism", "ddp", {"parallelism": None})[0] is None


def test_advice_its_family_banded_is_not_judged_again_with_another_models_error():
    """DDP's accumulation advice is checked against the step as it is now (no replay); judged again with the bucket
    replay's +5% error, it read "Not advised" beside its own finding's "(advice below)"."""
    from commprof.analysis.section import Advice, Check, Section
    from commprof.analysis.uncertainty.bands import with_bands
    from commprof.analysis.uncertainty.maths import Noise

    own = Advice(knob="gradient syncs per step", value=1, baseline_step_ms=100.0, predicted_step_ms=91.0,
                 predicted_range_ms=(85.0, 97.0), why="")
    bare = Advice(knob="bucket_cap_mb", value=4, baseline_step_ms=100.0, predicted_step_ms=91.0, why="")
    check = Check(rank=0, model_step_ms=105.0, measured_step_ms=100.0, tolerance_pct=10.0)  # +5%
    s = with_bands(Section(family="ddp", detail=None, advice=(own, bare), check=check), Noise())
    assert own in s.advice  # kept as its family judged it
    # the bare item is judged here: its band (the model's floor and +5% error) reaches 100 / 1.05
    assert [a.knob for a in s.advice] == ["gradient syncs per step"]
    assert any(f.text.startswith("Not advised: bucket_cap_mb = 4") and "95.2 ms" in f.text for f in s.findings)
