"""The plots' palette and figure helpers (matplotlib, Agg), shared by every plot module."""

from __future__ import annotations

import io

from ..palette import (  # noqa: F401  (re-exported: the plot modules take their colours from here)
    ASSUMED,
    COMM,
    COMPUTE,
    EXPOSED,
    LESS,
    MEASURED,
    MEMCPY,
    MORE,
    OTHER,
    PREDICTED,
    SERIES,
)

MAX_TIMELINE_RANKS = 16


def new_figure(w: float, h: float):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(w, h), dpi=110)
    return plt, fig, ax


def to_png(plt, fig, rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> bytes:
    """The figure as PNG bytes, laid out within ``rect`` (figure fractions), then closed."""
    buf = io.BytesIO()
    fig.tight_layout(rect=rect)
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
