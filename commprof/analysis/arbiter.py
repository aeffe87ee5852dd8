"""Which findings stand when two families speak about the same time.

The report must not contradict itself: a family's model that misses the traced run by more than its own
tolerance cannot say "nothing to gain" (the claim rests on the model), and no family may say "nothing to gain"
beside a measured "exposed communication" finding of another family that is at least of medium severity (a rank's
exposed transfers, or a dimension's communication on the job's critical path: a gloo DDP run read "communication is
already hidden ... nothing to gain" beside 14.49 ms of its all-reduces on the path): the measurement stands, the
model's claim goes.  Everything else stands, in the families' order.
"""

from __future__ import annotations

from collections.abc import Sequence

from .section import EXPOSED, NOTHING_TO_GAIN, Advice, Finding, Section

_WEIGHTY = ("high", "medium")


def _stands(f: Finding, s: Section, exposed_elsewhere: bool) -> bool:
    if f.claim != NOTHING_TO_GAIN:
        return True
    if s.check is not None and not s.check.ok:
        return False
    return not exposed_elsewhere


def arbitrate(sections: Sequence[Section]) -> tuple[tuple[Finding, ...], tuple[Advice, ...]]:
    """The findings and advice of every section that stand, in the sections' order."""
    findings: list[Finding] = []
    for s in sections:
        exposed = any(f.claim == EXPOSED and f.severity in _WEIGHTY
                      for o in sections if o is not s for f in o.findings)
        findings.extend(f for f in s.findings if _stands(f, s, exposed))
    return tuple(findings), tuple(a for s in sections for a in s.advice)
