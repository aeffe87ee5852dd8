"""Writing a report's files: summary.json, report.html with its PNG plots, merged.json — atomically, each file
complete or absent, into one folder.

The merged Perfetto trace is written up to ``PERFETTO_MAX_BYTES`` of JSON (64 MB by default, ``--perfetto-max-mb``;
0: no limit): past it the file is left out with one line saying so, and report.html does not link it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..analysis.analyze import Report
from ..atomic import write_bytes, write_text
from ..errors import InputError
from . import FORMATS

PERFETTO_MAX_BYTES = 64_000_000
_BYTES_PER_EVENT = 110  # a merged.json slice is ~110-190 bytes: below this estimate x limit, render and measure


def _event_estimate(rep: Report) -> int:
    return sum(len(rt.compute) + len(rt.comm) + len(rt.memcpy) + len(rt.collectives) + len(rt.steps)
               for rt in rep.run.ranks)


def merged_bytes(rep: Report, max_bytes: int | None, notes: list[str]) -> bytes | None:
    """merged.json's bytes, or None (and a line in ``notes``) when it would be over ``max_bytes``."""
    from . import perfetto

    if max_bytes and _event_estimate(rep) * _BYTES_PER_EVENT > max_bytes:
        notes.append(f"merged.json not written: about {_event_estimate(rep):,} events, over the "
                     f"{max_bytes / 1e6:.0f} MB limit (--perfetto-max-mb; 0 for no limit)")
        return None
    data = perfetto.render(rep)
    if max_bytes and len(data) > max_bytes:
        notes.append(f"merged.json not written: {len(data) / 1e6:.0f} MB of JSON, over the {max_bytes / 1e6:.0f} MB "
                     "limit (--perfetto-max-mb; 0 for no limit)")
        return None
    return data


def write_outputs(rep: Report, out_dir: Path, formats: Sequence[str], *,
                  perfetto_max_bytes: int | None = PERFETTO_MAX_BYTES, notes: list[str] | None = None) -> list[str]:
    """Write the files of ``formats`` into ``out_dir``; returns the paths written, in order.  ``notes`` collects
    one line per file left out (merged.json over ``perfetto_max_bytes``)."""
    written: list[str] = []
    notes = notes if notes is not None else []
    to_write = [FORMATS[f] for f in FORMATS if f in formats and FORMATS[f].filename]
    if not to_write:
        return written
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(out_dir, f"cannot create the output folder ({e.strerror or e})") from None
    merged = merged_bytes(rep, perfetto_max_bytes, notes) if "perfetto" in formats else None
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
                write_text(target, html.render(rep, pngs, FORMATS["perfetto"].filename if merged else None))
            elif fmt.name == "perfetto":
                if merged is None:
                    continue
                write_bytes(target, merged)
            else:
                data = fmt.renderer()(rep)
                write_bytes(target, data) if isinstance(data, bytes) else write_text(target, data)
            written.append(str(target))
    except PermissionError:
        raise InputError(out_dir, "permission denied: cannot write the report there (use -o)") from None
    except OSError as e:
        raise InputError(out_dir, f"cannot write the report ({e.strerror or e})") from None
    return written
