"""Writing outputs, the one way: every file atomically (complete or absent), into one folder, named by
``commprof.formats.files`` — a report's (summary.json, report.html with its PNG plots, merged.json), a comparison's
(compare.json, compare.html) and the report of a folder that holds only the monitor's files.

The merged Perfetto trace is written up to ``PERFETTO_MAX_BYTES`` of JSON (64 MB by default, ``--perfetto-max-mb``;
0: no limit): past it the file is left out with one line saying so, and report.html does not link it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ..analysis.analyze import Report
from ..analysis.compare import Comparison
from ..analysis.production.diagnosis import MonitorReport
from ..atomic import write_bytes, write_text
from ..errors import InputError
from ..formats import files
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
                     f"{max_bytes / 1e6:.0f} MB limit (perfetto_max_bytes=; 0 for no limit)")
        return None
    data = perfetto.render(rep)
    if max_bytes and len(data) > max_bytes:
        notes.append(f"merged.json not written: {len(data) / 1e6:.0f} MB of JSON, over the {max_bytes / 1e6:.0f} MB "
                     "limit (perfetto_max_bytes=; 0 for no limit)")
        return None
    return data


def write_files(out_dir: Path, named: Iterable[tuple[str, bytes | str]], what: str = "the report") -> list[str]:
    """Write each (file name, content) of ``named`` into ``out_dir``, atomically and in order (the folder is made
    at the first file: nothing to write, no folder); returns the paths written.  ``what`` names the output in the
    error a folder that cannot be written raises."""
    written: list[str] = []
    try:
        for name, data in named:
            if not written:
                _make(out_dir)
            target = out_dir / name
            write_bytes(target, data) if isinstance(data, bytes) else write_text(target, data)
            written.append(str(target))
    except PermissionError:
        raise InputError(out_dir, f"permission denied: cannot write {what} there (choose another out_dir=)") from None
    except OSError as e:
        raise InputError(out_dir, f"cannot write {what} ({e.strerror or e})") from None
    return written


def _make(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(out_dir, f"cannot create the output folder ({e.strerror or e})") from None


def write_outputs(rep: Report, out_dir: Path, formats: Sequence[str], *,
                  perfetto_max_bytes: int | None = PERFETTO_MAX_BYTES, notes: list[str] | None = None) -> list[str]:
    """Write the files of ``formats`` into ``out_dir``; returns the paths written, in order.  ``notes`` collects
    one line per file left out (merged.json over ``perfetto_max_bytes``)."""
    notes = notes if notes is not None else []
    if not any(FORMATS[f].filename for f in FORMATS if f in formats):
        return []
    merged = merged_bytes(rep, perfetto_max_bytes, notes) if "perfetto" in formats else None
    return write_files(out_dir, _report_files(rep, formats, merged))


def _report_files(rep: Report, formats: Sequence[str], merged: bytes | None) -> Iterator[tuple[str, bytes | str]]:
    for fmt in (FORMATS[f] for f in FORMATS if f in formats and FORMATS[f].filename):
        if fmt.name == "html":
            from . import html
            from .plot import plots

            pngs = plots.all_plots(rep)
            for name, png in pngs.items():
                yield files.plot_name(name), png
            yield files.HTML, html.render(rep, pngs, files.MERGED if merged else None)
        elif fmt.name == "perfetto":
            if merged is not None:
                yield files.MERGED, merged
        else:
            yield fmt.filename or "", fmt.renderer()(rep)


def write_comparison(comp: Comparison, out_dir: Path, formats: Iterable[str]) -> list[str]:
    """compare.json and compare.html of a ``Comparison``, as ``formats`` asks (text is printed, not written)."""
    from . import compare

    def named() -> Iterator[tuple[str, bytes | str]]:
        if "json" in formats:
            yield files.COMPARE, compare.to_json(comp)
        if "html" in formats:
            yield files.COMPARE_HTML, compare.html(comp, compare.plots(comp))

    return write_files(out_dir, named(), "the comparison")


def write_monitor_only(mon: MonitorReport, out_dir: Path, formats: Iterable[str]) -> list[str]:
    """The report of a folder that holds only the monitor's files : summary.json, and
    report.html with the lateness plot beside it."""
    from .families import monitor

    def named() -> Iterator[tuple[str, bytes | str]]:
        if "json" in formats:
            yield files.SUMMARY, monitor.json_only(mon)
        if "html" in formats:
            png = monitor.lateness_plot(mon)
            if png is not None:
                yield files.plot_name("lateness"), png
            yield files.HTML, monitor.html_only(mon, png)

    return write_files(out_dir, named())
