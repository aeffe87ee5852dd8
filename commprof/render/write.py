"""Writing a report's files: summary.json, report.html with its PNG plots, merged.json — atomically, each file
complete or absent, into one folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..analysis.analyze import Report
from ..atomic import write_bytes, write_text
from ..errors import InputError
from . import FORMATS


def write_outputs(rep: Report, out_dir: Path, formats: Sequence[str]) -> list[str]:
    """Write the files of ``formats`` into ``out_dir``; returns the paths written, in order."""
    written: list[str] = []
    to_write = [FORMATS[f] for f in FORMATS if f in formats and FORMATS[f].filename]
    if not to_write:
        return written
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(out_dir, f"cannot create the output folder ({e.strerror or e})") from None
    try:
        for fmt in to_write:
            target = out_dir / (fmt.filename or "")
            if fmt.name == "html":
                from . import html
                from .plot import plots

                pngs = plots.all_plots(rep)
                for name, png in pngs.items():
                    write_bytes(out_dir / f"{name}.png", png)
                    written.append(str(out_dir / f"{name}.png"))
                write_text(target, html.render(rep, pngs))
            else:
                data = fmt.renderer()(rep)
                write_bytes(target, data) if isinstance(data, bytes) else write_text(target, data)
            written.append(str(target))
    except PermissionError:
        raise InputError(out_dir, "permission denied: cannot write the report there (use -o)") from None
    except OSError as e:
        raise InputError(out_dir, f"cannot write the report ({e.strerror or e})") from None
    return written
