"""The HTML's cards quote the rank the text's exposed-communication finding quotes (they showed the middle rank:
Megatron TP8's rank 7 beside the text's rank 4), and one step as one step ("mean of 1 steps; range x-x")."""

from __future__ import annotations

from types import SimpleNamespace

from commprof.render.html import _cards

NO_OVERLAPS = SimpleNamespace(overlaps=())


def _rank(rank: int, step: float, exposed: float, steps: int) -> dict:
    spread = {"steps": steps, "median_ms": step, "min_ms": step - 1, "max_ms": step + 1}
    return {"rank": rank, "median_step": 1, "step_ms": step, "exposed_comm_ms": exposed, "overlap_pct": 10.0,
            "comm_ms": exposed + 1, "comm_bytes_per_step": 1 << 20, "steps": steps, "step_spread": spread}


def test_the_cards_quote_the_most_exposed_rank():
    s = {"ranks": [_rank(0, 627.9, 480.0, 3), _rank(4, 633.3, 495.2, 3), _rank(7, 630.0, 490.0, 3)]}
    html = "".join(_cards(NO_OVERLAPS, s, {}))  # type: ignore[arg-type]
    assert "633.30 ms" in html and "exposed comm (rank 4, 78% of its step)" in html
    one = "".join(_cards(NO_OVERLAPS, {"ranks": [_rank(4, 633.3, 495.2, 1)]}, {}))  # type: ignore[arg-type]
    assert "rank 4, one step" in one and "mean of 1 steps" not in one


def test_one_headline_rank_for_the_text_the_html_and_compare():
    """The most exposed rank, the lowest on a tie: compare took the highest on a tie, the text and cards the lowest."""
    from commprof.analysis.overlap import most_exposed

    assert most_exposed({0: 480.0, 4: 495.2, 7: 490.0}) == 4
    assert most_exposed({3: 10.0, 1: 10.0, 2: 5.0}) == 1 and most_exposed({}) is None


def test_the_cards_choose_from_the_unrounded_figures():
    """Two ranks equal in summary.json's 3 decimals: the cards choose as the text does, from the exact nanoseconds."""
    s = {"ranks": [_rank(0, 600.0, 495.2, 3), _rank(1, 601.0, 495.2, 3)]}
    exact = SimpleNamespace(overlaps=[SimpleNamespace(rank=r, representative=SimpleNamespace(exposed_ns=ns))
                                      for r, ns in ((0, 495_200_100), (1, 495_200_400))])
    assert "exposed comm (rank 1," in "".join(_cards(exact, s, {}))  # type: ignore[arg-type]
    assert "exposed comm (rank 0," in "".join(_cards(NO_OVERLAPS, s, {}))  # type: ignore[arg-type]


def test_findings_warnings_and_advice_are_never_cut():
    """A root cause of 1,143 characters ended "(nothing runs: da…" in the HTML, its advice lost; the terminal had it
    whole. commprof's own sentences are never cut, in either."""
    from commprof.render.html import _findings, _warnings

    long = "Rank 1 holds the job back: " + "idle before collectives; " * 120 + "check its DataLoader."
    rep = SimpleNamespace(findings=[SimpleNamespace(severity="high", text=long)], advice=[], section=lambda _f: None)
    page = "".join(_findings(rep, {}, {}))  # type: ignore[arg-type]
    assert len(long) > 2000 and long in page and "…" not in page
    warning = "the traced run was disturbed: " + "one-off stalls left out: step 3 on rank 0; " * 40 + "the end"
    assert warning in "".join(_warnings(rep, {"warnings": [warning]}, {}))  # type: ignore[arg-type]


def test_the_exposed_card_says_when_the_rank_mostly_waits():
    """An outside tester's uneven batch: the card featured the waiting rank's 20.61 ms of exposed communication above
    a verdict naming the other rank; the card says how much of it waits for later ranks."""
    waiting = {**_rank(1, 35.0, 20.61, 12), "wait_ms": 18.0}
    html = "".join(_cards(NO_OVERLAPS, {"ranks": [_rank(0, 35.0, 2.0, 12), waiting]}, {}))  # type: ignore[arg-type]
    assert "exposed comm (rank 1, 59% of its step; 18.00 ms of its comm waits for later ranks" in html
    quiet = {**_rank(1, 35.0, 20.61, 12), "wait_ms": 1.0}
    assert "waits for later" not in "".join(_cards(NO_OVERLAPS, {"ranks": [quiet]}, {}))  # type: ignore[arg-type]
