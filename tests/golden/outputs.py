"""The outputs the golden test pins, produced the way a user produces them: ``python -m commprof report``.

``outputs(rel)`` runs the CLI's ``main()`` in this process on a trace set given by its path relative to the
repository root (so that every path in the outputs is the same on every machine) and returns, by name:

- ``summary.json`` and ``merged.json`` exactly as written;
- ``text.txt``: what the terminal showed, with the temporary output folder replaced by ``<OUT>``;
- ``plots.json``: the data every plot draws (bars, lines, points, images, titles and labels), read off the
  matplotlib figures as they are saved, rounded to 6 significant digits.  PNG bytes depend on fonts and
  library versions; the data does not.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _r(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return [_r(v) for v in x]
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(f):
        return str(f)
    return float(f"{f:.6g}")


def figure_data(fig) -> dict[str, Any]:
    """What a figure draws, as plain JSON-able data."""
    import numpy as np

    axes = []
    for ax in fig.axes:
        a: dict[str, Any] = {"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
                             "xscale": ax.get_xscale(), "yscale": ax.get_yscale(),
                             "yticklabels": [t.get_text() for t in ax.get_yticklabels()]}
        a["patches"] = [_r([p.get_x(), p.get_y(), p.get_width(), p.get_height()]) + [str(p.get_facecolor())]
                        for p in ax.patches if hasattr(p, "get_width")]
        a["lines"] = [[_r(np.asarray(ln.get_xdata(), dtype=float).tolist()),
                       _r(np.asarray(ln.get_ydata(), dtype=float).tolist()), str(ln.get_color())]
                      for ln in ax.lines]
        cols = []
        for c in ax.collections:
            item: dict[str, Any] = {"type": type(c).__name__}
            offs = c.get_offsets()
            if len(offs):
                item["offsets"] = _r(np.asarray(offs, dtype=float).tolist())
            paths = c.get_paths()
            if paths and type(c).__name__ != "PathCollection":
                item["paths"] = [_r(np.asarray(p.vertices, dtype=float).tolist()) for p in paths]
            cols.append(item)
        a["collections"] = cols
        a["images"] = [_r(np.asarray(im.get_array(), dtype=float).tolist()) for im in ax.images]
        leg = ax.get_legend()
        a["legend"] = [t.get_text() for t in leg.get_texts()] if leg is not None else []
        axes.append(a)
    return {"axes": axes}


def outputs(rel: str) -> dict[str, bytes]:
    """Run ``python -m commprof report REL`` (text, json, html, perfetto) from the repository root."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    from commprof.__main__ import main

    figures: list[dict[str, Any]] = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        figures.append(figure_data(self))
        return original(self, *args, **kwargs)

    here = os.getcwd()
    Figure.savefig = savefig  # type: ignore[method-assign]
    try:
        os.chdir(ROOT)
        with tempfile.TemporaryDirectory() as tmp:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                rc = main(["report", rel, "-o", tmp, "--format", "text,json,html,perfetto", "-q"])
            if rc != 0:
                raise RuntimeError(f"commprof report {rel} exited with {rc}")
            out = {"summary.json": (Path(tmp) / "summary.json").read_bytes(),
                   "merged.json": (Path(tmp) / "merged.json").read_bytes(),
                   "text.txt": buf.getvalue().replace(tmp, "<OUT>").encode()}
    finally:
        Figure.savefig = original  # type: ignore[method-assign]
        os.chdir(here)
    by_title = {}
    for f in figures:
        title = " | ".join(a["title"] for a in f["axes"] if a["title"])
        by_title[title] = f
    out["plots.json"] = json.dumps(by_title, indent=1, sort_keys=True).encode()
    return out
