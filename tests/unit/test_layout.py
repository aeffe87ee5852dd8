"""The layout's rules (docs/design.md), checked on the source: imports point one way with no cycle (lazy imports
included), only capture imports torch, no file grows past 400 lines, and no call passes more than 8 positional
arguments."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import ROOT

PKG = ROOT / "commprof"
# layer of each top-level part; a module may import only from its own layer or lower ones
LAYERS = {"_version": 0, "units": 0, "ops": 0, "intervals": 0, "errors": 0, "warn": 0, "atomic": 0, "numlist": 0,
          "model": 1, "formats": 2,
          "capture": 3, "reader": 3, "analysis": 3, "engine": 4, "render": 5, "workloads": 6, "__main__": 7,
          "__init__": 7}
# parts of the same layer that must not import one another
APART = {("reader", "analysis"), ("analysis", "reader"), ("capture", "reader"), ("capture", "analysis"),
         ("reader", "capture"), ("analysis", "capture")}


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = set(_modules())


def _imports(name: str, path: Path) -> set[str]:
    """Every commprof module this one imports, at the top or inside a function."""
    tree = ast.parse(path.read_text())
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("commprof")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("commprof"):
                # "from pkg import module" imports the module (and runs pkg/__init__, a part of pkg)
                subs = {f"{mod}.{a.name}" for a in node.names} & MODULES
                found |= subs if subs and len(subs) == len(node.names) else {mod} | subs
    return found


def _part(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_dependencies_point_one_way():
    mods = _modules()
    bad = []
    for name, path in mods.items():
        mine = _part(name)
        for dep in _imports(name, path):
            if dep not in mods or dep == name:
                continue
            theirs = _part(dep)
            if theirs == mine:
                continue
            if LAYERS[theirs] > LAYERS[mine] or (mine, theirs) in APART:
                bad.append(f"{name} imports {dep}")
    assert not bad, "\n".join(bad)


def test_no_import_cycle_lazy_imports_included():
    mods = _modules()
    graph = {n: {d for d in _imports(n, p) if d in mods and d != n} for n, p in mods.items()}
    # a package's __init__ that only re-exports its own modules is part of them, not a cycle
    for n in graph:
        graph[n] = {d for d in graph[n] if not (n.startswith(d + ".") and mods[d].name == "__init__.py")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph[n]):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)


def test_only_capture_and_the_workloads_import_torch():
    mods = _modules()
    bad = []
    for name, path in mods.items():
        if _part(name) in ("capture", "workloads"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if any(n == "torch" or n.startswith("torch.") for n in names):
                bad.append(name)
    assert not bad, bad


def test_no_file_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_functions_are_short_except_the_hot_loop():
    long = []
    for p in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > 60 and node.name != "_scan_batch":
                    long.append(f"{p.relative_to(ROOT)}:{node.name} {n} lines")
    assert not long, "\n".join(long)


def test_raw_trace_keys_are_each_used():
    keys = ast.parse((PKG / "formats" / "keys.py").read_text())
    names = [t.id for node in keys.body if isinstance(node, ast.Assign) for t in
             (node.targets[0].elts if isinstance(node.targets[0], ast.Tuple) else node.targets)]
    src = "\n".join(p.read_text() for p in (PKG / "reader").rglob("*.py"))
    unused = [n for n in names if f"K.{n}" not in src]
    assert not unused, unused


def test_no_folder_over_15_modules():
    """A family with more than one module is a folder; no folder of the package holds more than 15 modules."""
    big = {}
    for d in [PKG, *(p for p in PKG.rglob("*") if p.is_dir() and p.name != "__pycache__")]:
        n = len([p for p in d.glob("*.py") if p.name != "__init__.py"])
        if n > 15:
            big[str(d.relative_to(ROOT))] = n
    assert not big, big


def test_no_call_with_more_than_8_positional_arguments():
    """Records are built by keyword: no call in the package passes more than 8 positional arguments (a ``*args``
    unpacking, a row of cells for a variadic API, counts as none)."""
    bad = []
    for p in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Call):
                n = sum(not isinstance(a, ast.Starred) for a in node.args)
                if n > 8:
                    bad.append(f"{p.relative_to(ROOT)}:{node.lineno} {ast.unparse(node.func)}() with {n}")
    assert not bad, "\n".join(bad)


def test_output_file_names_come_from_formats_files():
    """The command line and the writer name no output file themselves: the names live in formats/files.py."""
    bad = []
    for p in (PKG / "__main__.py", PKG / "render" / "write.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    re.fullmatch(r"[\w.-]+\.(json|html|png|txt)|commprof-\w+", node.value):
                bad.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert not bad, "\n".join(bad)


def test_the_design_map_names_every_module():
    """docs/design.md names every module of the package, one line each under its folder (the map stays true)."""
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    missing = [str(p.relative_to(ROOT)) for p in sorted(PKG.rglob("*.py"))
               if p.name != "__init__.py" and not re.search(rf"^\s+{re.escape(p.name)}\s", text, re.M)]
    assert not missing, f"add a line for each to docs/design.md: {missing}"


def test_test_modules_have_unique_names():
    """pytest imports test files by their base name (no packages under tests/): two test_x.py in different folders
    stop the whole collection, in CI, before any test runs."""
    seen: dict[str, list[str]] = {}
    for p in sorted((ROOT / "tests").rglob("test_*.py")):
        seen.setdefault(p.name, []).append(str(p.relative_to(ROOT)))
    clashes = {n: ps for n, ps in seen.items() if len(ps) > 1}
    assert not clashes, clashes
