"""The family tree of a run as a picture: generations as columns, nodes coloured by score,
edges labelled with the kinship of the parents that made the child.

>>> records = collect("runs/breed")                      # doctest: +SKIP
>>> draw(records, "family.svg")                         # doctest: +SKIP
"""
from __future__ import annotations

import logging
from pathlib import Path

import networkx as nx
from pydantic import RootModel

from kinmerge.figures import pyplot, save
from kinmerge.io.safe_path import inside
from kinmerge.lineage.record import FILE, LineageRecord, read_file

log = logging.getLogger(__name__)
RUN_FILE = "family.json"  # a run's records in one list (breed writes it, with pool scores)
RunRecords = RootModel[list[LineageRecord]]


def collect(path: str | Path) -> dict[str, LineageRecord]:
    """Every lineage record found under `path`: a model folder, a run folder (all
    lineage.json below it, plus family.json), or one of those JSON files."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(
        f for f in path.rglob(FILE) if not any(p.startswith(".") for p in f.parts[-3:-1]))
    records: dict[str, LineageRecord] = {}
    for f in files:
        if f.name == RUN_FILE:
            continue
        if f != path:
            inside(path, f.relative_to(path), what=FILE)
        lin = read_file(f)
        for rid, rec in lin.all().items():
            records[rid] = _richer(records.get(rid), rec)
    run = path / RUN_FILE if path.is_dir() else (path if path.name == RUN_FILE else None)
    if run is not None and run.is_file():
        for rec in read_file(run, RunRecords).root:
            records[rec.id] = _richer(records.get(rec.id), rec)
    return records


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
    """parent -> child edges; node attrs: name, score, column; edge attr: kinship."""
    g = nx.DiGraph()
    for rid, rec in records.items():
        g.add_node(rid, name=rec.name, score=score_of(rec), generation=rec.generation)
    for rid, rec in records.items():
        kin = next(iter(rec.parent_kinship.values()), None)
        for p in rec.parents:
            if p in records and _only_the_base(records[p], rec):
                continue  # the base every task vector is taken from is no parent
            if p not in g:
                g.add_node(p, name=p, score=None, generation=None)
            g.add_edge(p, rid, kinship=kin)
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
    return g


def _recipe_refs(rec: LineageRecord) -> tuple[str | None, list[str]]:
    """(base_model, [models]) of a record's recipe; (None, []) without one."""
    import yaml
    try:
        r = yaml.safe_load(rec.recipe or "") or {}
    except yaml.YAMLError:
        return None, []
    models = [m.get("model") if isinstance(m, dict) else m for m in r.get("models") or []]
    return r.get("base_model"), [str(m) for m in models]


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


def positions(g: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Generations as columns; within a column, best score on top."""
    cols: dict[int, list[str]] = {}
    for rid, d in g.nodes(data=True):
        cols.setdefault(d["column"], []).append(rid)
    pos = {}
    for c, ids in cols.items():
        ids.sort(key=lambda r: (-(g.nodes[r]["score"] or float("-inf")), g.nodes[r]["name"]))
        for i, rid in enumerate(ids):
            pos[rid] = (float(c), (len(ids) - 1) / 2 - i)
    return pos


def draw(records: dict[str, LineageRecord], out: str | Path, *, title: str | None = None) -> Path:
    """Write the family tree to `out`; the suffix (.svg, .png, .pdf) picks the format."""
    plt = pyplot()

    out = Path(out)
    g = build(records)
    pos = positions(g)
    ncols = max((d["column"] for _, d in g.nodes(data=True)), default=0) + 1
    nrows = max((sum(1 for _, d in g.nodes(data=True) if d["column"] == c)
                 for c in range(ncols)), default=1)
    fig, ax = plt.subplots(figsize=(max(6.0, 2.6 * ncols), max(4.0, 1.1 * nrows + 1.5)))
    scored = [n for n, d in g.nodes(data=True) if d["score"] is not None]
    vals = [g.nodes[n]["score"] for n in scored]
    best = lineage_of_best(g)
    nx.draw_networkx_edges(g, pos, ax=ax, edge_color=["#d62728" if a in best and b in best
                                                      else "#999999" for a, b in g.edges],
                           width=[2.2 if a in best and b in best else 1.0 for a, b in g.edges],
                           arrows=True, arrowsize=10, node_size=900)
    labels = {(a, b): f"{k:.2f}" for a, b, k in g.edges(data="kinship") if k is not None}
    nx.draw_networkx_edge_labels(g, pos, edge_labels=labels, ax=ax, font_size=7,
                                 label_pos=0.35, rotate=False)
    nx.draw_networkx_nodes(g, pos, nodelist=[n for n in g if n not in scored], ax=ax,
                           node_color="#dddddd", node_size=900, edgecolors="#555555")
    if scored:
        nodes = nx.draw_networkx_nodes(g, pos, nodelist=scored, node_color=vals, cmap="viridis",
                                       ax=ax, node_size=900, linewidths=[
                                           2.5 if n in best else 1.0 for n in scored],
                                       edgecolors=["#d62728" if n in best else "#333333"
                                                   for n in scored])
        fig.colorbar(nodes, ax=ax, label="score", shrink=0.8)
    nx.draw_networkx_labels(g, pos, labels={n: d["name"] for n, d in g.nodes(data=True)},
                            ax=ax, font_size=7, font_color="#000000",
                            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.7,
                                  "lw": 0})
    ax.set_xticks(range(ncols), [f"gen {c}" for c in range(ncols)])
    ax.tick_params(left=False, labelleft=False, bottom=True, labelbottom=True)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_title(title or "family tree (edges: parent → child, labelled with the parents' "
                 "kinship; red: the best model's lineage)")
    save(fig, out, dpi=110)
    log.info("family tree of %d models written to %s", g.number_of_nodes(), out)
    return out
