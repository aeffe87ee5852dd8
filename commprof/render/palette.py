"""The one palette of every plot and of the interactive timeline: each colour means one thing everywhere.

Activity colours (what a rank was doing) are never reused for anything else; predictions, measurements,
before/after changes and categorical series (one colour per collective in the bandwidth plot) have their own.
"""

from __future__ import annotations

# what a rank was doing
COMPUTE = "#4C72B0"  # compute (kernels / CPU operators)
COMM = "#EDA247"  # communication (hidden behind compute: the timeline, the breakdown bars)
EXPOSED = "#D1495B"  # exposed communication: nothing hides it
OTHER = "#C8C8C8"  # idle, host overhead, data loading
MEMCPY = "#55A868"  # memcpy / memset
WAIT = "#5A5A5A"  # waiting for the last rank to arrive at a collective
PATH = "#111111"  # the cross-rank critical path
SELECTED = "#00B3C7"  # a collective the user clicked, on every rank

# what-ifs: a model's prediction against what was measured
PREDICTED = "#2A9D8F"
MEASURED = "#264653"
ASSUMED = "#B8B8B8"  # a prediction resting on an assumed figure

# compare: after - before
MORE = "#A6611A"  # more time after the change
LESS = "#018571"  # less time after the change

# categorical series (one per collective / group); none of them is an activity colour
SERIES = ("#222222", "#8C564B", "#E377C2", "#17BECF", "#BCBD22", "#7F7F7F")

ACTIVITY = {"compute": COMPUTE, "comm": COMM, "exposed": EXPOSED, "wait": WAIT, "memcpy": MEMCPY,
            "idle": OTHER, "path": PATH, "selected": SELECTED}
