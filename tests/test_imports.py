"""The import graph: the CLI is the top floor, and the merge and kinship paths stay light."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "kinmerge"
HEAVY = ("transformers", "optuna", "matplotlib", "ray", "networkx", "rich.progress")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_no_module_below_the_cli_imports_it():
    offenders = {}
    for path in sorted(SRC.rglob("*.py")):
        if "cli" in path.relative_to(SRC).parts:
            continue
        bad = sorted(n for n in _imports(path) if n == "kinmerge.cli" or
                     n.startswith("kinmerge.cli."))
        if bad:
            offenders[str(path.relative_to(SRC))] = bad
    assert offenders == {}


def _loaded_after(code: str) -> list[str]:
    probe = (f"import sys\n{code}\n"
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    env_path = str(SRC.parent)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, check=True)
    return [m for m in r.stdout.strip().split(",") if m]


def test_merge_and_kinship_paths_load_no_heavy_package():
    assert _loaded_after("import kinmerge.merge, kinmerge.kinship, kinmerge.execute") == []


def test_the_cli_loads_command_dependencies_lazily():
    assert _loaded_after("import kinmerge.cli") == []
