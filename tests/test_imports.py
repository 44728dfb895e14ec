"""The import graph: the CLI is the top floor, no module imports itself back (not even
lazily or for types), and the merge and kinship paths stay light."""
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


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(src: Path = SRC) -> dict[str, dict[str, int]]:
    """module -> {module it imports: first line}, for every import in src's modules: at module
    level, inside functions and under TYPE_CHECKING alike (the `_moved.py` shims left out).

    An edge is what the import statement names: `from pkg import sub` (a submodule) is an
    edge to `pkg.sub`, `from pkg import name` (anything else) one to `pkg` itself, i.e. to its
    `__init__`. Python also runs every parent package's `__init__` first; those implicit
    imports are left out, or every package that re-exports its modules would be a circle."""
    files = {_module_name(p, src): p for p in src.rglob("*.py") if p.name != "_moved.py"}
    graph: dict[str, dict[str, int]] = {}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in files]
                targets = subs + ([base] if len(subs) < len(node.names) else [])
            else:
                continue
            for t in targets:
                while t and t not in files:  # `import kinmerge.x.y` -> the nearest module
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    edges.setdefault(t, node.lineno)
        graph[mod] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One circle through each strongly connected group of modules, each as the path
    a -> b -> ... -> a (Tarjan's algorithm, then a shortest way back round)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_round(graph, g) for g in groups]


def _round(graph: dict[str, dict[str, int]], group: set[str]) -> list[str]:
    start = min(group)
    paths = {start: [start]}
    todo = [start]
    while todo:  # breadth first inside the group, back to start
        v = todo.pop(0)
        for w in sorted(graph[v]):
            if w == start:
                return paths[v] + [start]
            if w in group and w not in paths:
                paths[w] = paths[v] + [w]
                todo.append(w)
    raise AssertionError(group)  # a strongly connected group always leads back


def _named(graph: dict[str, dict[str, int]], circle: list[str]) -> str:
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(circle, circle[1:])) + \
        f" -> {circle[-1]}"


def test_no_import_circles_lazy_or_type_only():
    graph = import_graph()
    assert len(graph) > 100 and "kinmerge.core.plan" in graph["kinmerge.core.merge"]
    found = [_named(graph, c) for c in cycles(graph)]
    assert found == [], "import circles:\n" + "\n".join(found)


def package_of(module: str) -> str:
    """The package a module belongs to: kinmerge's own subpackage or top-level module
    (kinmerge.search.breed.run -> kinmerge.search; kinmerge.demo -> kinmerge.demo)."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, dict[str, int]]) -> dict[str, dict[str, str]]:
    """package -> {package it imports: the first module import that makes the edge}: package
    A imports package B if any module of A imports any module of B (lazily, under
    TYPE_CHECKING or at module level alike, as `import_graph` counts them)."""
    out: dict[str, dict[str, str]] = {}
    for mod in sorted(graph):
        edges = out.setdefault(package_of(mod), {})
        for target, line in sorted(graph[mod].items()):
            if package_of(target) != package_of(mod):
                edges.setdefault(package_of(target), f"{mod} (line {line}) -> {target}")
    return out


def test_no_package_circles():
    """No package imports itself back through another: a layer never reaches up."""
    pkgs = package_graph(import_graph())
    assert {"kinmerge.core", "kinmerge.search", "kinmerge.report"} <= set(pkgs)
    found = [" -> ".join(c) + ":\n  " + "\n  ".join(pkgs[a][b] for a, b in zip(c, c[1:]))
             for c in cycles({p: dict.fromkeys(e, 0) for p, e in pkgs.items()})]
    assert found == [], "package import circles:\n" + "\n".join(found)


def test_the_package_circle_finder_sees_what_no_module_circle_shows(tmp_path):
    """The control: p.x -> q.y and q.z -> p.w is no circle of modules, but one of packages;
    a top-level module is a package of its own, and imports inside a package are no edge."""
    pkg = tmp_path / "kinmerge"
    for sub in ("p", "q"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    files = {"__init__.py": "", "p/x.py": "from kinmerge.q import y\n", "p/w.py": "",
             "q/y.py": "from kinmerge.p import w as _w\n", "q/z.py": "def f():\n    import kinmerge.p.w\n",
             "leaf.py": "from kinmerge.p import x\n"}
    for name, text in files.items():
        (pkg / name).write_text(text)
    graph = import_graph(pkg)
    assert cycles(graph) == []
    pkgs = package_graph(graph)
    assert pkgs["kinmerge.leaf"] == {"kinmerge.p": "kinmerge.leaf (line 1) -> kinmerge.p.x"}
    assert pkgs["kinmerge.p"] == {"kinmerge.q": "kinmerge.p.x (line 1) -> kinmerge.q.y"}
    assert pkgs["kinmerge.q"] == {"kinmerge.p": "kinmerge.q.y (line 1) -> kinmerge.p.w"}
    assert cycles({p: dict.fromkeys(e, 0) for p, e in pkgs.items()}) == [
        ["kinmerge.p", "kinmerge.q", "kinmerge.p"]]


def test_the_circle_finder_sees_lazy_type_only_and_relative_imports(tmp_path):
    """The control: a package with one circle of each kind the test above must catch."""
    pkg = tmp_path / "kinmerge"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from kinmerge.a import A\n",
        "a.py": "A = 1\ndef f():\n    from kinmerge import b\n",           # lazy
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import kinmerge.a\n",
        "c.py": "from kinmerge.sub import d\n",
        "sub/__init__.py": "",
        "sub/d.py": "from .. import c\n",                                    # relative
        "e.py": "from kinmerge import A\n",  # a name of kinmerge/__init__ -> kinmerge
        "_moved.py": "import kinmerge.e\n",  # shims are left out
        "f.py": "import kinmerge.sub.d\n",   # no circle: nothing comes back to f
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    graph = import_graph(pkg)
    assert sorted(graph) == ["kinmerge", "kinmerge.a", "kinmerge.b", "kinmerge.c",
                             "kinmerge.e", "kinmerge.f", "kinmerge.sub", "kinmerge.sub.d"]
    assert graph["kinmerge.e"] == {"kinmerge": 1} and graph["kinmerge.sub"] == {}
    found = sorted(cycles(graph))
    assert found == [["kinmerge.a", "kinmerge.b", "kinmerge.a"],
                     ["kinmerge.c", "kinmerge.sub.d", "kinmerge.c"]]
    assert _named(graph, found[1]) == ("kinmerge.c (line 1) -> kinmerge.sub.d (line 1) -> "
                                       "kinmerge.c")


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


def _loaded_after(code: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    probe = (f"import sys\n{code}\n"
             f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    env_path = str(SRC.parent)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, check=True)
    return [m for m in r.stdout.strip().split(",") if m]


def test_merge_and_kinship_paths_load_no_heavy_package():
    assert _loaded_after("import kinmerge.core.merge, kinmerge.kinship, kinmerge.core.execute") == []


def test_the_cli_loads_command_dependencies_lazily():
    assert _loaded_after("import kinmerge.cli") == []


def test_old_import_paths_still_work_and_warn():
    """The layout move kept every old module path for a release, as a deprecated stand-in."""
    probe = """
import warnings
warnings.simplefilter("error", DeprecationWarning)
import kinmerge
import kinmerge.merge          # the old module path, registered as a stand-in
assert callable(kinmerge.merge) and kinmerge.merge.__module__ == "kinmerge.core.merge"
try:
    from kinmerge.evolve import evolve
except DeprecationWarning as w:
    print(w)
warnings.simplefilter("ignore", DeprecationWarning)
from kinmerge.evolve import evolve
from kinmerge.search.evolve import evolve as new
from kinmerge.breed.summary import BreedSummary
from kinmerge.search.breed.summary import BreedSummary as new_summary
from kinmerge.configfile import read_yaml
from kinmerge.io.configfile import read_yaml as new_read
assert evolve is new and BreedSummary is new_summary and read_yaml is new_read
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       env={"PYTHONPATH": str(SRC.parent), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "kinmerge.evolve moved to kinmerge.search.evolve; import it from there (the old path "
        "is removed in kinmerge 0.3)", "ok"]


def test_every_moved_module_exists_at_its_new_path():
    from kinmerge import _moved
    for old, new in _moved.all_moved().items():
        rel = Path(*new.split(".")[1:])
        assert (SRC / f"{rel}.py").is_file() or (SRC / rel / "__init__.py").is_file(), (old, new)


def _command_loads(args: list[str]) -> tuple[int, list[str], str]:
    """Run `kinmerge ARGS` in a fresh process; its exit code, the heavy packages it loaded
    (torch among them), and its output."""
    probe = (f"import sys\nsys.argv = ['kinmerge', *{args!r}]\n"
             "from kinmerge.cli import main\n"
             "try:\n    main()\nexcept SystemExit as e:\n    code = e.code or 0\n"
             f"print('LOADED=' + ','.join(m for m in ('torch', *{HEAVY!r}) "
             "if m in sys.modules))\nprint('EXIT=' + str(code))\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       cwd=SRC.parents[1], check=True,
                       env={"PYTHONPATH": str(SRC.parent), "PATH": "/usr/bin:/bin",
                            "COLUMNS": "100"})
    lines = r.stdout.splitlines()
    loaded = [m for m in lines[-2].removeprefix("LOADED=").split(",") if m]
    return int(lines[-1].removeprefix("EXIT=")), loaded, "\n".join(lines[:-2])


def test_help_methods_and_validate_start_without_torch():
    """The commands users type all day answer before torch could even load (about 2 s)."""
    code, loaded, text = _command_loads(["--help"])
    assert (code, loaded) == (0, []) and "Commands:" in text
    code, loaded, text = _command_loads(["methods", "ties"])
    assert (code, loaded) == (0, []) and "ties" in text and "density" in text
    code, loaded, text = _command_loads(["validate", "examples/ties.yml", "--no-models"])
    assert (code, loaded) == (0, []) and text == "recipe OK (models not checked)"
    # the control: the same probe sees torch once tensors are computed (planning, even
    # reaching kinmerge.merge, needs none)
    assert _loaded_after("import kinmerge\nkinmerge.merge", ("torch",)) == []
    assert _loaded_after("import kinmerge.core.execute", ("torch",)) == ["torch"]


def test_lazy_public_names_are_the_real_ones():
    probe = """
import kinmerge, kinmerge.io, kinmerge.kinship
from kinmerge.core.merge import merge, MergedModel
from kinmerge.core.recipe import load_recipe
from kinmerge.io.reader import ModelReader
from kinmerge.kinship.measure import kinship
from kinmerge.methods import get_method
from kinmerge.methods.task_vector import ties
assert kinmerge.merge is merge and kinmerge.MergedModel is MergedModel
assert kinmerge.load_recipe is load_recipe and kinmerge.io.ModelReader is ModelReader
assert kinmerge.kinship.kinship is kinship and get_method("ties").fn is ties
assert set(kinmerge.__all__) <= set(dir(kinmerge))
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       env={"PYTHONPATH": str(SRC.parent), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr
