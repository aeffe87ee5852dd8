"""How the renderers show each analysis family: one ``View`` per family, in the order the report shows them.

Each renderer (``summary``, ``text``, ``html``, ``plot/plots``) draws what is common to every run (ranks,
collectives, bandwidth, stragglers) and loops over ``VIEWS`` for the rest: a view's hooks are each optional and
called only for a family the report has a section of (``json``: always, so that summary.json's keys are the same
for every run).  Adding a family that draws something of its own: its functions in ``render/families/<family>.py``
and one ``View`` below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .families import crossrank, dataparallel, ddp, fsdp, memory, monitor, pipeline, transfers

Hook = Callable[..., Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class View:
    family: str  # the ``Section.family`` it shows
    json: Hook | None = None  # (report) -> summary.json keys, called for every report
    lead_text: Hook | None = None  # (report, section) -> lines said before anything else in the terminal
    lead_html: Hook | None = None  # (report, section, plots) -> HTML parts before anything else
    note: Hook | None = None  # (report, section) -> a line said after the advice (the model check), or None
    text: Hook | None = None  # (console, report, summary) -> prints its tables
    html: Hook | None = None  # (report, summary, plots) -> HTML parts
    plots: Hook | None = None  # (report, section) -> PNGs by name


VIEWS: tuple[View, ...] = (
    View(family="crossrank", json=crossrank.as_json, text=crossrank.text, html=crossrank.html),
    View(family="ddp", json=ddp.as_json, note=ddp.note, text=ddp.text, html=ddp.html, plots=ddp.plots),
    View(family="fsdp", json=fsdp.report_json, text=fsdp.text, html=fsdp.html, plots=fsdp.plots),
    View(family="pipeline", json=pipeline.as_json, text=pipeline.text, html=pipeline.html),
    View(family="dataparallel", json=dataparallel.as_json, html=dataparallel.html),
    View(family="memory", json=memory.as_json, text=memory.text, html=memory.html),
    View(family="transfers", json=transfers.as_json),
    View(family="production", json=monitor.report_json, lead_text=monitor.lead_text, lead_html=monitor.lead_html,
         plots=monitor.plots),
)


def shown(report: Any, hook: str) -> list[tuple[Hook, Any]]:
    """The views' ``hook`` functions whose family the report has, each with its section, in the views' order."""
    out = []
    for v in VIEWS:
        sec = report.section(v.family)
        fn = getattr(v, hook)
        if sec is not None and fn is not None:
            out.append((fn, sec))
    return out
