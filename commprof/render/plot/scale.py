"""The per-rank plots past ``PLOT_RANKS_MAX`` ranks: aggregated, so that drawing them costs a handful of artists
whatever the number of ranks and the figure keeps one readable size.

- ``breakdown_many``: every rank as one column of a stacked area, the ranks sorted by their compute per step
  (the busiest right), ticks at the rank with the least compute, the quartiles and the busiest rank (each named),
  the busiest ``NAMED`` ranks listed.
- ``stragglers_many``: the wait heat map with ranks in consecutive groups of at most ``MAX_ROWS`` rows, each row
  the least wait of its group (the rank the others wait for waits least: its group stays pale), the ranks that
  arrived last (beyond the straggler threshold) most often named and their rows marked.
- ``bandwidth_many``: the bandwidth plot when the run has more series (op, process group, size) than colours:
  the groups of one op and size as one series, with the median group's fit.
- ``lateness_many``: the monitor's lateness plot: the slow and the latest ranks as lines, the rest as a band.
- ``rank_areas``: horizontal stacked bars of many ranks as a few areas (compare.html's breakdowns).
- ``timeline_ranks``: which ranks the one-step timeline draws when it cannot draw them all: the stragglers first,
  then ranks spread evenly over the job.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...analysis.analyze import Report
from ..safe import plain
from .figure import COMM, COMPUTE, EXPOSED, OTHER, SERIES, new_figure, to_png

PLOT_RANKS_MAX = 64  # past this many ranks the per-rank plots aggregate (one bar / row per rank up to it)
MAX_ROWS = 64  # rows of the aggregated wait heat map (7 px each: one pale row stays visible)
NAMED = 5  # ranks named beside an aggregated plot


def breakdown_many(rep: Report) -> bytes | None:
    """Where each rank's step goes, for many ranks: compute only / overlapped / exposed / other (ms per step,
    means over the analyzed steps, as ``plots.breakdown``) as stacked areas over the ranks sorted by compute."""
    ovs = [o for o in rep.overlaps if o.steps]
    if not ovs:
        return None

    def mean(attr: str) -> np.ndarray:
        return np.array([(o.mean(attr) or 0.0) / 1e6 for o in ovs])

    ranks = np.array([o.rank for o in ovs])
    comp = mean("compute_ns")
    order = np.lexsort((ranks, comp))  # by compute, then rank: the busiest right
    comp, over, expo, other, step = (v[order] for v in (comp, mean("overlapped_ns"), mean("exposed_ns"),
                                                         mean("other_ns"), mean("step_ns")))
    ranks = ranks[order]
    n = len(ranks)
    x = np.arange(n)
    plt, fig, ax = new_figure(9, 4.2)
    layers = (comp - over, over, expo, other)
    ax.stackplot(x, *layers, colors=(COMPUTE, COMM, EXPOSED, OTHER), linewidth=0,
                 labels=("compute only", "comm hidden by compute", "exposed comm", "other (idle, host, memcpy)"))
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(0, float(np.sum(layers, axis=0).max()) * 1.12 or 1.0)
    at = sorted({0, n // 4, n // 2, (3 * n) // 4, n - 1})
    names = {0: "least compute", n // 4: "p25", n // 2: "median", (3 * n) // 4: "p75", n - 1: "most compute"}
    ax.set_xticks(at, [f"{names[i]}\nrank {ranks[i]}" for i in at], fontsize=7)
    for i in at[1:-1]:
        ax.axvline(i, color="#ffffff", lw=0.6, ls=":")
    top = list(range(n - 1, max(n - 1 - NAMED, -1), -1))
    busiest = ", ".join(f"rank {ranks[i]} {comp[i]:.2f} / {step[i]:.2f}" for i in top)
    # a column is a pixel at most: mark the busiest ranks' compute, and point at the busiest
    ax.plot(x[top], comp[top], "_", color="#111111", ms=9, mew=1.5, clip_on=False)
    high = float(np.sum(layers, axis=0).max())
    ax.annotate(f"rank {ranks[n - 1]}: {comp[n - 1]:.2f} ms compute", xy=(n - 1, comp[n - 1]), fontsize=7,
                xytext=(0.62 * n, high * 1.05), va="center", arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.set_xlabel(f"{n} ranks, sorted by compute per step (each rank one column)\n"
                  f"most compute (ms compute / step): {busiest}", fontsize=8)
    ax.set_ylabel("ms per step (mean over analyzed steps)")
    ax.set_title("Where each rank's step goes", pad=24)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize=8, frameon=False)
    return to_png(plt, fig)


def _row_groups(n: int, rows: int = MAX_ROWS) -> list[tuple[int, int]]:
    """``n`` consecutive indices cut into at most ``rows`` groups of equal size but the last: (first, end)."""
    size = -(-n // rows)
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def stragglers_many(rep: Report, g) -> bytes:
    """The wait heat map of group ``g`` (a ``crossrank.GroupMatch`` of many ranks), rows grouped."""
    wait = g.wait_ns.T / 1e6  # ranks x instances
    ranks = list(g.ranks)
    groups = _row_groups(len(ranks), MAX_ROWS)
    img = np.stack([wait[a:b].min(axis=0) for a, b in groups])
    plt, fig, ax = new_figure(9, 5.2)
    im = ax.imshow(img, aspect="auto", cmap="Reds", interpolation="nearest")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    every = max(1, len(groups) // 16)
    ticks = list(range(0, len(groups), every))
    ax.set_yticks(ticks, [_span(ranks, *groups[i]) for i in ticks], fontsize=7)
    arr = np.asarray(g.arrival_ns)
    spread = arr.max(axis=1) - arr.min(axis=1)
    late = spread > rep.cross.threshold_ns  # instances someone arrived late at
    # the last ranks of each: within a hundredth of the instance's spread of the last arrival (ranks that arrive
    # together, as a tensor-parallel group does, are last together)
    last = arr[late] >= (arr[late].max(axis=1) - spread[late] // 100)[:, None]
    counts = last.sum(axis=0)
    top = [int(i) for i in np.argsort(-counts, kind="stable")[:NAMED] if counts[i]]
    named = _named([ranks[i] for i in top], [int(counts[i]) for i in top], len(arr))
    if np.count_nonzero(counts == counts.max()) > len(top) and counts.max():
        named += f" and {np.count_nonzero(counts == counts.max()) - len(top)} more as often"
    size = groups[0][1] - groups[0][0]
    rows = sorted({next(j for j, (a, b) in enumerate(groups) if a <= i < b) for i in top})
    ax.plot([-0.5] * len(rows), rows, ">", color="#111111", ms=6, clip_on=False)  # their rows, marked
    ax.set_xlim(-0.5, img.shape[1] - 0.5)
    ax.set_xlabel(f"collective instance in process group {plain(g.process_group, 20)} (issue order)"
                  + (f"\nlast to arrive most often (▶ their rows): {named}" if named else ""), fontsize=8)
    ax.set_title(f"Wait for the last rank to arrive (ms), {len(ranks)} ranks"
                 + (f" in rows of {size}, each row its least wait" if size > 1 else "")
                 + ":\na pale row holds the rank the others wait for", fontsize=9)
    cb = fig.colorbar(im, ax=ax)
    cb.set_label("wait (ms)")
    return to_png(plt, fig)


def _named(ranks: Sequence[int], counts: Sequence[int], of: int) -> str:
    """"rank 3 (9 of 12), rank 5 (4 of 12)", or "ranks 3, 4 (9 of 12 each)" when the counts are one."""
    if len(set(counts)) == 1 and len(ranks) > 1:
        return f"ranks {', '.join(str(r) for r in ranks)} ({counts[0]} of {of} each)"
    return ", ".join(f"rank {r} ({k} of {of})" for r, k in zip(ranks, counts, strict=True))


def _span(ranks: Sequence[int], a: int, b: int) -> str:
    return f"rank {ranks[a]}" if b - a == 1 else f"ranks {ranks[a]}-{ranks[b - 1]}"


def timeline_ranks(rep: Report, candidates: Sequence[int], most: int) -> list[int]:
    """At most ``most`` of ``candidates`` (rank numbers, in order) to draw: all of them when they fit, else the
    ranks that caused the most wait (up to half), then ranks spread evenly; in rank order."""
    if len(candidates) <= most:
        return list(candidates)
    have = set(candidates)
    pick = [s.rank for s in rep.cross.stragglers if s.rank in have and s.caused_wait_ms > 0][:most // 2]
    rest = [r for r in candidates if r not in pick]
    need = most - len(pick)
    idx = np.linspace(0, len(rest) - 1, need).round().astype(int) if need > 0 else np.zeros(0, dtype=int)
    pick += [rest[i] for i in sorted(set(idx.tolist()))]
    return sorted(pick)


def bandwidth_many(rep: Report, keys: Sequence[tuple[str, str, int]]) -> bytes | None:
    """Bandwidth vs message size when the run has more (op, process group, size) series than colours (tensor
    parallel groups of a large job): the groups of one op and size drawn as one series, with the fit of the group
    whose β is the median of theirs."""
    from ...ops import bus_factor

    bw = rep.bandwidth
    merged: dict[tuple[str, int], list[tuple[str, str, int]]] = {}
    for key in sorted(keys):
        merged.setdefault((key[0], key[2]), []).append(key)
    plt, fig, ax = new_figure(8, 5.2)
    peak = None
    for i, ((op, n), members) in enumerate(sorted(merged.items())):
        x = np.concatenate([bw.samples[k][0] for k in members])
        t = np.concatenate([bw.samples[k][1] for k in members])
        ok = t > 0
        x, t = x[ok], t[ok]
        if x.size == 0:
            continue
        f = bus_factor(op, n) or 1.0
        c = SERIES[i % len(SERIES)]
        groups = f"{len(members)} groups of {n}" if len(members) > 1 else f"group {plain(members[0][1], 10)}, n={n}"
        ax.scatter(x, x / t * f, s=6, alpha=0.3, color=c, label=f"{plain(op, 20)} ({groups}, {x.size:,} transfers)",
                   rasterized=True)
        fits = sorted((ft for ft in bw.fits if (ft.op, ft.process_group, ft.group_size) in set(members)
                       and ft.beta_gbps), key=lambda ft: ft.beta_gbps or 0.0)
        if fits:
            fit = fits[(len(fits) - 1) // 2]
            which = f"median of {len(fits)} groups' fits" if len(fits) > 1 else "fit"
            assumed = " (α assumed)" if fit.alpha_assumed else ""
            fit_curve(ax, x, fit, f, c, f"{which}: α={fit.alpha_us or 0:.0f} µs, β={fit.beta_gbps:.2f} GB/s{assumed}")
        peak = next(((ft.peak_gbps, ft.peak_source) for ft in fits if ft.peak_gbps), peak)
    finish_bandwidth(ax, peak, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    return to_png(plt, fig)


def fit_curve(ax, x: np.ndarray, fit, factor: float, color: str, label: str) -> None:
    """A fitted α-β line (bus bandwidth) from half the smallest to twice the largest size of ``x``, dashed where α
    was assumed (sizes spread too little to fit it)."""
    xs = np.logspace(np.log10(max(x.min() / 2, 1)), np.log10(x.max() * 2), 60)
    ts = (fit.alpha_us or 0.0) * 1e3 + xs / (fit.beta_gbps or 1.0)  # ns
    ax.plot(xs, xs / ts * factor, color=color, lw=1.2, ls="--" if fit.alpha_assumed else "-", label=label)


def finish_bandwidth(ax, peak: tuple[float, str | None] | None, **legend) -> None:
    """The bandwidth plot's peak line, log axes, labels, title and legend (placed by ``legend``)."""
    if peak:
        ax.axhline(peak[0], color="#777777", ls="--", lw=1, label=f"peak {peak[0]:.0f} GB/s ({plain(peak[1], 40)})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("message size (bytes)")
    ax.set_ylabel("bus bandwidth (GB/s, transfer time)")
    ax.set_title("Bandwidth vs message size (waits for late ranks removed)")
    ax.legend(fontsize=7, frameon=False, **legend)


def rank_areas(ax, ranks: Sequence[int], layers: Sequence[tuple[np.ndarray, str]]) -> None:
    """Stacked horizontal bars of many ranks (``layers``: each part's widths, one per rank, and its colour) drawn
    as one area per part, the first rank at the top; ticks name at most 17 ranks."""
    y = np.arange(len(ranks))
    left = np.zeros(len(ranks))
    for width, color in layers:
        ax.fill_betweenx(y, left, left + width, color=color, step="mid", linewidth=0)
        left = left + width
    every = max(1, len(ranks) // 16)
    ax.set_yticks(y[::every], [f"rank {ranks[i]}" for i in range(0, len(ranks), every)], fontsize=7)
    ax.set_ylim(len(ranks) - 0.5, -0.5)


def lateness_many(sd) -> bytes:
    """The monitor's lateness plot (a ``production.slowdown.Slowdown``) of many ranks: the ranks with a slow range
    and the latest ranks (``NAMED`` each) as lines, every other rank as one band (its range per step) and its
    median; the slow ranges shaded."""
    from .figure import EXPOSED

    slow = list(dict.fromkeys(r.rank for r in sd.ranges))[:NAMED]
    latest = [s.rank for s in sorted(sd.series, key=lambda s: -float(s.late_ms.max())) if s.late_ms.size][:NAMED]
    named = set(slow) | set(latest)
    rest = [s for s in sd.series if s.rank not in named]
    plt, fig, ax = new_figure(10, 3.6)
    if rest:
        steps = np.unique(np.concatenate([s.steps for s in rest]))
        col = {int(v): i for i, v in enumerate(steps.tolist())}
        grid = np.full((len(rest), len(steps)), np.nan)
        for i, s in enumerate(rest):
            grid[i, [col[int(v)] for v in s.steps.tolist()]] = s.late_ms
        with np.errstate(all="ignore"):
            lo, mid, hi = np.nanmin(grid, axis=0), np.nanmedian(grid, axis=0), np.nanmax(grid, axis=0)
        ax.fill_between(steps, lo, hi, color="#d0d0d0", lw=0, label=f"the other {len(rest)} ranks: range")
        ax.plot(steps, mid, color="#888888", lw=1, label="their median")
    for i, s in enumerate(s for s in sd.series if s.rank in named):
        ax.plot(s.steps, s.late_ms, lw=1, color=SERIES[i % len(SERIES)],
                label=f"rank {s.rank}" + (" (slow range)" if s.rank in slow else ""))
    for a, b in (span for x in sd.ranges for span in x.spans()):
        ax.axvspan(a, b, color=EXPOSED, alpha=0.12)
    ax.axhline(sd.threshold_ms, color="#444", lw=0.8, ls="--", label="threshold")
    ax.set_xlabel("step")
    ax.set_ylabel("late (ms)")
    ax.set_title(f"How late each of {len(sd.series)} ranks issued its collectives (shaded: slow ranges)", fontsize=9)
    ax.legend(fontsize=7, ncol=4)
    return to_png(plt, fig)
