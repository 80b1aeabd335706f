"""The layout shows the architecture: the modules under `packager/` (`analysis/` included) are pure
(values in, values out), and only `packager/executor/` reads files, runs processes or touches
process-wide state. The command line (`cli.py`, `__main__.py`) and the Tekton steps (`tekton.py`)
sit on top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "packager"
ON_TOP = {"cli.py", "__main__.py", "tekton.py"}
# Every module under packager/ but the executor and those on top, subpackages (analysis/) too.
PURE = sorted(p for p in PACKAGE.rglob("*.py")
              if p.relative_to(PACKAGE).parts[0] not in {*ON_TOP, "executor"})
# Standard-library modules whose use is a side effect (processes, signals, threads, files).
SIDE_EFFECTS = {"signal", "subprocess", "threading", "shutil", "tempfile", "socket", "fcntl",
                "urllib", "http", "docker"}
# Calls that open, stat or list files, or edit the interpreter's module table.
IO_CALLS = {("os", "open"), ("os", "stat"), ("os", "fstat"), ("os", "listdir"),
            ("os", "scandir"), ("sys", "modules")}


def _imported(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_pure_module_imports_no_executor_and_no_side_effects(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(PACKAGE)
    for name in _imported(tree):
        assert not name.startswith("packager.executor"), f"{where} imports {name}"
        assert name.split(".")[0] not in SIDE_EFFECTS, f"{where} imports {name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            assert (node.value.id, node.attr) not in IO_CALLS, \
                f"{where}:{node.lineno} uses {node.value.id}.{node.attr}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "open", f"{where}:{node.lineno} calls open()"


# --- phases are declared once: packager/phasetable.py ----------------------------------------


def test_phase_names_are_written_only_in_the_phase_table() -> None:
    """Code outside the table refers to a phase through its entry (PACKAGE.name, STEPS[...]), so
    a phase is not dispatched by if-chains on its name and a new phase touches one table."""
    from packager.phasetable import PHASES

    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "phasetable.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and node.value in PHASES:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}")
    assert not found, found


@pytest.mark.parametrize("module", ["cli.py", "tekton.py"])
def test_the_cli_never_compares_the_command_name(module: str) -> None:
    """Each subcommand's parser names its handler (set_defaults(run=...))."""
    tree = ast.parse((PACKAGE / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            assert not any(isinstance(s, ast.Attribute) and s.attr == "command" for s in sides), \
                f"{module}:{node.lineno} {ast.unparse(node)}"


def test_the_phase_table_needs_only_the_standard_library() -> None:
    """noxfile.py imports it before (and without) installing the packager's dependencies."""
    tree = ast.parse((PACKAGE / "phasetable.py").read_text())
    assert set(_imported(tree)) <= {"__future__", "sys", "collections.abc", "dataclasses"}


def test_the_cli_and_a_package_run_import_no_numpy() -> None:
    """numpy costs ~60 ms and ~15 MB per command: only a model with samples.npz (and verify's
    answers) needs it, so it is imported where those are read, not on every run."""
    import subprocess
    import sys

    code = ("import sys, packager.cli, packager.executor.package, packager.executor.phases, "
            "packager.executor.serving, packager.executor.push; "
            "print(sorted(m for m in ('numpy', 'onnx', 'tritonclient') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=60).stdout.strip()
    assert out == "[]", out
