"""``trace()``'s options are declared once, in ``commprof.capture.options.TraceOptions``: the facade's signature is
the record's, every field has its docstring, and docs/capture.md lists them as generated from the record.

``python tests/unit/test_options.py`` rewrites the list in docs/capture.md."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import pytest

import commprof
from commprof.capture.options import TraceOptions

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "commprof" / "capture" / "options.py"
DOC = ROOT / "docs" / "capture.md"
BEGIN = "<!-- options: generated from commprof/capture/options.py by `python tests/unit/test_options.py` -->"
END = "<!-- end of the generated options -->"


def documented_fields() -> list[tuple[str, str, str]]:
    """(name, default, docstring) of each of TraceOptions's fields, in order, read from its source."""
    tree = ast.parse(SOURCE.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TraceOptions")
    out = []
    for node, nxt in zip(cls.body, [*cls.body[1:], None], strict=True):
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name) or node.target.id == "_":
            continue
        doc = nxt.value.value if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) else ""
        default = ast.unparse(node.value) if node.value is not None else ""
        out.append((node.target.id, default, " ".join(str(doc).split()).replace("``", "`")))
    return out


def options_block() -> str:
    lines = [BEGIN, "", "| option | default | what it does |", "|---|---|---|"]
    lines += [f"| `{name}` | `{default}` | {doc} |" for name, default, doc in documented_fields()]
    return "\n".join([*lines, "", END])


def test_every_option_has_its_docstring_and_the_record_has_them_all():
    fields = documented_fields()
    assert [f[0] for f in fields] == list(inspect.signature(TraceOptions).parameters)
    assert all(doc for _n, _d, doc in fields), [n for n, _d, doc in fields if not doc]


def test_the_facade_and_the_session_take_the_records_signature():
    from_record = inspect.signature(TraceOptions).parameters
    assert inspect.signature(commprof.trace).parameters == from_record
    assert list(from_record)[:2] == ["out_dir", "model"] and from_record["out_dir"].kind.name == "POSITIONAL_OR_KEYWORD"
    assert from_record["wait"].kind.name == "KEYWORD_ONLY"


def test_the_options_are_checked_before_torch_is_needed():
    with pytest.raises(ValueError, match="active >= 1"):
        TraceOptions(active=0)
    with pytest.raises(ValueError, match="comm_hook= needs model="):
        TraceOptions(comm_hook=print)
    assert TraceOptions(wait=2).schedule() == {"wait": 2, "warmup": 1, "active": 3, "repeat": 1, "skip_first": 0}


def test_docs_list_the_options_as_the_record_declares_them():
    text = DOC.read_text()
    assert BEGIN in text and END in text, f"{DOC} lacks the generated options; run python {__file__}"
    current = text[text.index(BEGIN):text.index(END) + len(END)]
    assert current == options_block(), f"{DOC}'s options are out of date; run python tests/unit/test_options.py"


if __name__ == "__main__":
    text = DOC.read_text()
    if BEGIN in text:
        text = text[:text.index(BEGIN)] + options_block() + text[text.index(END) + len(END):]
        DOC.write_text(text)
        sys.exit(0)
    sys.exit(f"{DOC}: put the two lines {BEGIN!r} and {END!r} where the options go")
