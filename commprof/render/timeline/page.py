"""report.html's interactive parts: the timeline of every rank, the per-step heat map and sortable tables.

The JavaScript and CSS are commprof's own files (``assets/``, package data), inlined: the page fetches nothing.
The data is ``timeline.timeline_data`` as JSON in a ``<script type="application/json">`` element.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import orjson

from ...analysis.analyze import Report
from ..palette import ACTIVITY
from ..safe import html_text as h
from .data import Q_NS, timeline_data


@cache
def asset(name: str) -> str:
    """One of ``commprof/render/timeline/assets``' files, as text."""
    return resources.files("commprof.render.timeline").joinpath("assets", name).read_text(encoding="utf-8")


def _json(doc: object) -> str:
    """JSON that cannot end its <script> element: every '<' escaped (only strings can hold one)."""
    return orjson.dumps(doc).decode("utf-8").replace("<", "\\u003c")


def _key(name: str, label: str) -> str:
    return f"<span><span class='tl-key' style='background:{ACTIVITY[name]}'></span>{h(label)}</span>"


def css() -> str:
    return asset("report.css")


def timeline_section(rep: Report, merged_name: str | None = None) -> list[str]:
    """The timeline, the per-step heat map, their data and scripts; ``merged_name``: the merged Perfetto trace
    written beside the page, linked."""
    data = timeline_data(rep)
    n_ranks = len(data["ranks"])
    dropped = data["dropped"]
    note = []
    if dropped["intervals"]:
        note.append(f"{dropped['intervals']:,} intervals shorter than {dropped['below_us']:,} µs (compute, "
                    f"exposed, memcpy, waits) are not drawn, to keep the page within {dropped['budget']:,} "
                    "intervals; every collective is drawn.")
    note.append(f"Times are {Q_NS // 1000} µs quanta on the reference rank's clock (clocks aligned across ranks by "
                "the collectives' common end times).")
    if not data["path"]:
        note.append("No critical path in this report: the overlay is empty.")
    if merged_name:
        note.append(f"Every event, zoomable: <a href='{h(merged_name)}'>{h(merged_name)}</a>, the merged trace of "
                    "all ranks. Open it at ui.perfetto.dev (\"Open trace file\"; the file stays on your machine) "
                    "or in chrome://tracing.")
    help_ = ("Wheel: zoom · drag: pan · shift+wheel: scroll ranks · click a collective: the same call on every "
             "rank · click a rank's label: its lanes (streams / threads) · double click: the whole run"
             + (" · the overview is ranks × time: click it to zoom into a group of ranks, wheel over the labels to "
                "zoom ranks" if n_ranks * 22 > 640 else ""))
    keys = "".join(_key(k, v) for k, v in (("compute", "compute"), ("comm", "comm (hidden)"),
                                          ("exposed", "comm (exposed)"), ("wait", "wait for the last rank"),
                                          ("memcpy", "memcpy"), ("path", "critical path"),
                                          ("selected", "selected call")))
    return [
        "<h2 id='timeline'>Timeline: every rank</h2>",
        f"<p class='note'>{h(help_, 1000)}</p>",
        "<div class='tl-wrap'><div class='tl-bar' data-commprof='timeline-bar'>"
        "<button data-act='reset'>whole run</button><button data-act='all'>all ranks</button>"
        "<label><input type='checkbox' data-act='unfold'> unfold lanes</label>"
        "<label><input type='checkbox' data-act='path' checked> critical path</label>" + keys + "</div>",
        "<div data-commprof='timeline' data-view-start-ns='0' data-view-end-ns='0'><canvas></canvas>"
        "<div class='tl-tip' data-commprof='tooltip' hidden></div></div></div>",
        "<p class='note'>" + " ".join(note) + "</p>",
        "<h2 id='stepgrid'>Per-step variation</h2><p class='note'>Each rank's steps: "
        "<select data-commprof='stepgrid-field'><option value='step_us'>step time</option>"
        "<option value='exposed_us'>exposed communication</option></select> (a dark column is a slow step on "
        "every rank; a dark row, a slow rank).</p>",
        "<div class='tl-wrap' data-commprof='stepgrid'><canvas></canvas>"
        "<div class='tl-tip' data-commprof='stepgrid-tooltip' hidden></div></div>",
        f"<script type='application/json' id='commprof-timeline-data'>{_json(data)}</script>",
        f"<script>{asset('timeline.js')}</script>",
        f"<script>{asset('stepgrid.js')}</script>",
    ]


def table_script() -> str:
    return f"<script>{asset('tables.js')}</script>"
