"""The family tree of a run as a graph: every lineage record found under a folder, parent ->
child edges (the merge base is no parent), and the best model's lineage. `tree` draws it.

>>> g = build(collect("runs/breed"))                     # doctest: +SKIP
>>> lineage_of_best(g)                                  # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

import networkx as nx
from pydantic import RootModel

from kinmerge.errors import KinmergeError
from kinmerge.io.safe_path import inside
from kinmerge.lineage.record import FILE, LineageRecord, read_file

RUN_FILE = "family.json"  # a run's records in one list (breed writes it, with pool scores)
RunRecords = RootModel[list[LineageRecord]]


def collect(path: str | Path) -> dict[str, LineageRecord]:
    """Every lineage record found under `path`: a model folder, a run folder (all
    lineage.json and family.json below it: a demo's breed/family.json brings the pool's
    scores), or one of those JSON files."""
    path = Path(path)
    records: dict[str, LineageRecord] = {}
    for f in _found(path, FILE):
        if f.name == RUN_FILE:
            continue
        lin = read_file(f)
        for rid, rec in lin.all().items():
            records[rid] = _richer(records.get(rid), rec)
    for run in _found(path, RUN_FILE):
        if run.name != RUN_FILE:
            continue
        for rec in read_file(run, RunRecords).root:
            records[rec.id] = _richer(records.get(rec.id), rec)
    return records


def _found(path: Path, name: str) -> list[Path]:
    """`path` itself if it is a file, else the files called `name` below it (not in hidden
    folders, none reached through a link out of `path`)."""
    if path.is_file():
        return [path]
    files = sorted(f for f in path.rglob(name)
                   if not any(p.startswith(".") for p in f.parts[-3:-1]))
    for f in files:
        inside(path, f.relative_to(path), what=name)
    return files


def _richer(old: LineageRecord | None, new: LineageRecord) -> LineageRecord:
    """An ancestor embedded in a child's file may predate its own scores: keep the fuller."""
    if old is None:
        return new
    return new if len(new.scores) >= len(old.scores) else old


def score_of(rec: LineageRecord) -> float | None:
    if "fitness" in rec.scores:
        return rec.scores["fitness"]
    return sum(rec.scores.values()) / len(rec.scores) if rec.scores else None


def build(records: dict[str, LineageRecord]) -> nx.DiGraph:
    """parent -> child edges; node attrs: name, score, gen (its generation, else one past
    its latest parent's), column (where it is drawn: gens in order, a gap of several empty
    generations closed to one), kinship (of its parents); edge attr: kinship."""
    g = nx.DiGraph()
    for rid, rec in records.items():
        kin = next(iter(rec.parent_kinship.values()), None)
        g.add_node(rid, name=rec.name, score=score_of(rec), generation=rec.generation,
                   kinship=kin)
    for rid, rec in records.items():
        kin = next(iter(rec.parent_kinship.values()), None)
        for p in rec.parents:
            if p in records and _only_the_base(records[p], rec):
                continue  # the base every task vector is taken from is no parent
            if p not in g:
                g.add_node(p, name=p, score=None, generation=None, kinship=None)
            g.add_edge(p, rid, kinship=kin)
    if not nx.is_directed_acyclic_graph(g):  # records from several files, each a tree
        cycle = [u for u, _ in nx.find_cycle(g)]
        raise KinmergeError("the lineage records found form a cycle of parents: "
                            + " -> ".join(records[c].name if c in records else c
                                          for c in cycle + cycle[:1]),
                            where="lineage.json / family.json files",
                            fix="remove the file that records a model as its own ancestor "
                                "(a copied or edited lineage.json)")
    g.remove_nodes_from([n for n in list(g) if g.degree(n) == 0 and len(g) > 1
                         and records.get(n) is not None and records[n].is_root
                         and _is_a_base(n, records)])
    for rid in nx.topological_sort(g):  # a missing generation: one past the latest parent
        node = g.nodes[rid]
        if node["generation"] is None:
            parents = [g.nodes[p]["column"] for p in g.predecessors(rid)]
            node["column"] = max(parents) + 1 if parents else 0
        else:
            node["column"] = node["generation"]
    # the generation each column shows; a run of empty generations is drawn as one empty
    # column (a record's generation may be 10**6: no million columns for it)
    place, col, prev = {}, 0, None
    for gen in sorted({d["column"] for _, d in g.nodes(data=True)}):
        col = 0 if prev is None else col + min(gen - prev, 2)
        place[gen], prev = col, gen
    for _, d in g.nodes(data=True):
        d["gen"], d["column"] = d["column"], place[d["column"]]
    return g


def _recipe_refs(rec: LineageRecord) -> tuple[str | None, list[str]]:
    """(base_model, [models]) of a record's recipe; (None, []) without one."""
    import yaml
    try:
        r = yaml.safe_load(rec.recipe or "") or {}
    except (yaml.YAMLError, RecursionError, ValueError):
        return None, []
    if not isinstance(r, dict):
        return None, []
    models = r.get("models")
    models = [m.get("model") if isinstance(m, dict) else m
              for m in (models if isinstance(models, list) else [])]
    base = r.get("base_model")
    return (str(base) if base is not None else None), [str(m) for m in models]


def _only_the_base(parent: LineageRecord, child: LineageRecord) -> bool:
    base, models = _recipe_refs(child)
    return base is not None and parent.ref == str(base) and parent.ref not in models


def _is_a_base(rid: str, records: dict[str, LineageRecord]) -> bool:
    return any(_only_the_base(records[rid], r) for r in records.values() if rid in r.parents)


def lineage_of_best(g: nx.DiGraph) -> set[str]:
    """The best-scored model and all its ancestors (highlighted in the drawing)."""
    scored = [n for n, d in g.nodes(data=True) if d["score"] is not None]
    if not scored:
        return set()
    best = max(scored, key=lambda n: (g.nodes[n]["score"], -g.nodes[n]["column"]))
    return {best} | nx.ancestors(g, best)
