"""The family tree of one model as text: every ancestor back to the roots, with recipes."""
from __future__ import annotations

from rich.markup import escape
from rich.tree import Tree

from kinmerge.lineage.record import Lineage, LineageRecord


def describe(rec: LineageRecord) -> str:
    """One line: name, id, method, generation, scores, kinship, gain (names escaped: a
    name holding `[` is text, not markup)."""
    parts = [f"[bold]{escape(rec.name)}[/] [dim]{escape(rec.id)}[/]"]
    if rec.method:
        parts.append(escape(rec.method))
    if rec.generation is not None:
        parts.append(f"gen {rec.generation}")
    if rec.scores:
        parts.append("scores " + ", ".join(f"{escape(k)}={v:.4g}"
                                           for k, v in rec.scores.items()))
    if rec.parent_kinship:
        parts.append("parent kinship " + ", ".join(
            f"{escape(k)}=" + ("undefined" if v is None else f"{v:.4g}")
            for k, v in rec.parent_kinship.items()))
    if rec.merge_gain is not None:
        parts.append(f"gain {rec.merge_gain:+.4g}")
    if rec.is_root:
        parts.append(f"root: {escape(str(rec.ref))}")
    return " · ".join(parts)


def tree(lin: Lineage, *, recipes: bool = True) -> Tree:
    """A rich Tree from the model down to its roots. A shared ancestor is drawn in full
    under the first child that descends from it and named again under the others ("shown
    above"), so a tree of many generations stays as long as its number of models."""
    records = lin.all()
    shown: set[str] = set()
    root = Tree(describe(lin.model))
    if recipes and lin.model.recipe:
        root.add("[dim]" + escape(lin.model.recipe.rstrip()) + "[/]")
    # depth first, parents in recipe order, on a stack: a chain of thousands of generations
    # is no recursion limit
    todo = [(root, p) for p in reversed(lin.model.parents)]
    while todo:
        node, rid = todo.pop()
        rec = records.get(rid)
        if rec is None:
            node.add(f"[red]unknown ancestor {escape(rid)}[/]")
            continue
        if rid in shown:
            node.add(f"{escape(rec.name)} [dim]{escape(rid)} (shown above)[/]")
            continue
        shown.add(rid)
        branch = node.add(describe(rec))
        if recipes and rec.recipe:
            branch.add("[dim]" + escape(rec.recipe.rstrip()) + "[/]")
        todo.extend((branch, p) for p in reversed(rec.parents))
    return root


def ancestors(lin: Lineage) -> list[LineageRecord]:
    """Every ancestor of the model, nearest first (breadth first), each once."""
    seen, out, queue = set(), [], list(lin.model.parents)
    records = lin.all()
    while queue:
        rid = queue.pop(0)
        if rid in seen or rid not in records:
            continue
        seen.add(rid)
        out.append(records[rid])
        queue.extend(records[rid].parents)
    return out
