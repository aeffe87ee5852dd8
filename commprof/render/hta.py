"""A bridge to Holistic Trace Analysis (optional: ``pip install 'commprof[hta]'``).

HTA is published as ``traceinsight`` from 0.6 (0.6.1 checked: ``tests/golden/test_hta_crosscheck.py`` passes) and
was ``HolisticTraceAnalysis`` up to 0.5; both install the import package ``hta`` with the same ``TraceAnalysis``, so
the bridge takes whichever is installed (``hta_version`` says which).

HTA's ``TraceAnalysis`` opens a folder and parses every JSON file in it as a trace; a commprof folder also holds
the sidecars (``rank{R}.commprof.json``) and the report.  ``trace_folder`` gives HTA a folder of links to the
run's traces only, ``analysis`` opens it, and ``overlap_frame`` gives commprof's overlap with HTA's column
names, on HTA's window (where the two agree within half a point, ``tests/golden/test_hta_crosscheck.py``)
beside commprof's own figures.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ..analysis.analyze import Report
from ..model import Run


def trace_folder(run: Run, dest: str | os.PathLike | None = None) -> Path:
    """A folder holding links to the run's Kineto traces, one per rank, nothing else (a new temporary folder
    unless ``dest`` is given; existing links of the same names are replaced)."""
    out = Path(dest) if dest is not None else Path(tempfile.mkdtemp(prefix="commprof-hta-"))
    out.mkdir(parents=True, exist_ok=True)
    for rt in run.ranks:
        src = Path(rt.path).resolve()
        link = out / src.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(src)
    return out


def hta_version() -> str | None:
    """The installed HTA distribution and version ("traceinsight 0.6.1", "HolisticTraceAnalysis 0.5.0"), or None."""
    from importlib import metadata

    for dist in ("traceinsight", "HolisticTraceAnalysis"):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def analysis(run: Run, dest: str | os.PathLike | None = None) -> Any:
    """HTA's ``TraceAnalysis`` on the run's traces."""
    try:
        from hta.trace_analysis import TraceAnalysis
    except ImportError:
        raise ImportError("Holistic Trace Analysis is not installed: pip install 'commprof[hta]' "
                          "(traceinsight >= 0.6.1; HolisticTraceAnalysis 0.5 works too)") from None
    return TraceAnalysis(trace_dir=str(trace_folder(run, dest)))


def overlap_frame(rep: Report) -> Any:
    """Per rank, as HTA's ``get_comm_comp_overlap`` names it (``rank``, ``comp_comm_overlap_pctg``: on HTA's
    window), then commprof's: overlap over the whole analyzed window, and per median step the exposed
    communication and the wait for late ranks (µs, HTA's unit), which HTA does not compute."""
    import pandas as pd

    rows = []
    for o in rep.overlaps:
        med = o.representative
        wait = rep.cross.wait_ms_per_step.get(o.rank)
        rows.append({"rank": o.rank, "comp_comm_overlap_pctg": round(o.hta_window.overlap_pct, 2),
                     "commprof_window_overlap_pctg": round(o.window.overlap_pct, 2),
                     "exposed_comm_time(us)": round(med.exposed_ns / 1e3, 1) if med else None,
                     "wait_time(us)": round(wait * 1e3, 1) if wait is not None else None})
    return pd.DataFrame(rows)
