"""The house rules of ARCHITECTURE.md that a machine can check: module sizes, the shape of the
tree, the direction of imports, no sys.path patching, and the installed ``galaxysd`` command."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "galaxysd_core"

#: Subpackages in the order of the data flow; a module may import its own subpackage and the ones
#: before it (plus the shared leaves), never one after it. io/ (PNG/FITS/archives/uploads) depends
#: only on the schema, so every later stage may write or read files through it.
FLOW = ("schema", "io", "data", "prompts", "models", "pipelines", "training", "evaluation", "science",
        "studio", "cli")
#: Leaves every module may import.
SHARED = {"errors", "config", "_utils", "__init__"}
MAX_LINES = 500
MAX_TOP_LEVEL_MODULES = 10


def _package_modules():
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def _imported_galaxysd_modules(path: Path):
    """``galaxysd_core.x.y`` names imported by a file (module level and inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "galaxysd_core":
                for alias in node.names:
                    yield f"galaxysd_core.{alias.name}"
            elif node.module.startswith("galaxysd_core."):
                yield node.module
        elif isinstance(node, ast.ImportFrom) and node.level:
            yield "<relative>"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("galaxysd_core"):
                    yield alias.name


def test_no_module_over_500_lines_and_few_top_level_modules():
    too_long = {str(p.relative_to(REPO)): n for p in _package_modules()
                if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"
    top = [p.name for p in PKG.glob("*.py")]
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"{len(top)} modules directly in galaxysd_core/: {top}"
    subpackages = {p.name for p in PKG.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == set(FLOW), f"subpackages {sorted(subpackages)} differ from the documented flow {FLOW}"


def test_imports_point_down_the_flow():
    rank = {name: i for i, name in enumerate(FLOW)}
    wrong = []
    for path in _package_modules():
        rel = path.relative_to(PKG).parts
        own = rel[0] if len(rel) > 1 else None
        for mod in _imported_galaxysd_modules(path):
            if mod == "<relative>":
                wrong.append(f"{path.relative_to(REPO)}: relative import (use absolute galaxysd_core imports)")
                continue
            parts = mod.split(".")
            target = parts[1] if len(parts) > 1 else "__init__"
            if target in SHARED or own is None or target == own:
                continue
            if target in rank and own in rank and rank[target] > rank[own]:
                wrong.append(f"{path.relative_to(REPO)} imports {mod} ({own}/ may not import {target}/)")
    assert not wrong, "imports against the flow:\n" + "\n".join(wrong)


def test_package_never_imports_the_app_scripts_or_tests():
    bad = []
    for path in _package_modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in {"pages", "train", "bench", "tests", "tiny_models", "app", "streamlit"}:
                    bad.append(f"{path.relative_to(REPO)} imports {name}")
    assert not bad, bad


def test_schema_imports_no_torch():
    code = ("import sys, importlib, pkgutil, galaxysd_core.schema as s\n"
            "for m in pkgutil.iter_modules(s.__path__): importlib.import_module('galaxysd_core.schema.' + m.name)\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "galaxysd_core.schema imported torch"


def test_no_sys_path_patching_outside_tests():
    hits = []
    for folder in ("galaxysd_core", "pages", "train", "bench"):
        for path in (REPO / folder).rglob("*.py"):
            if "sys.path" in path.read_text():
                hits.append(str(path.relative_to(REPO)))
    if "sys.path" in (REPO / "app.py").read_text():
        hits.append("app.py")
    assert not hits, f"sys.path manipulation in {hits}"


def test_no_print_in_the_library_outside_the_cli():
    hits = []
    for path in _package_modules():
        if path.relative_to(PKG).parts[0] == "cli":
            continue  # the command line writes its results to stdout
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                hits.append(f"{path.relative_to(REPO)}:{node.lineno}")
            if isinstance(node, ast.Name) and node.id == "print" and isinstance(node.ctx, ast.Load):
                hits.append(f"{path.relative_to(REPO)}:{node.lineno} (print passed as a value)")
    assert not hits, f"print in the library (use logging): {sorted(set(hits))}"


def test_errors_are_defined_in_errors_py():
    outside = []
    for path in _package_modules():
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if any(b.endswith(("Error", "Exception")) or b in {"ImageRejected"} for b in bases):
                    outside.append(f"{path.relative_to(REPO)}: {node.name}")
    assert not outside, f"exception classes outside errors.py: {outside}"


def test_galaxysd_command_lists_every_subcommand():
    exe = shutil.which("galaxysd", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the galaxysd command is not installed in this environment (pip install -e .)")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    from galaxysd_core.cli import SUBCOMMANDS

    for name in SUBCOMMANDS:
        assert name in out
    module = subprocess.run([sys.executable, "-m", "galaxysd_core", "--help"], capture_output=True, text=True,
                            check=True).stdout
    assert module == out.replace(Path(exe).name, "galaxysd") or "usage: galaxysd" in module


def test_classifier_release_modules_import_no_circle():
    """classifier_card <- classifier_release <- classifier_experiments, never back (the card owns GOALS and
    the comparison summary)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "galaxysd_core" / "evaluation"

    def imports(name):
        tree = ast.parse((root / f"{name}.py").read_text())
        return {n.module.rsplit(".", 1)[-1] for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("galaxysd_core.evaluation.")}

    assert not {"classifier_release", "classifier_experiments"} & imports("classifier_card")
    assert "classifier_experiments" not in imports("classifier_release")
