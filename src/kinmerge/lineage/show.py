"""The family tree of one model as text: every ancestor back to the roots, with recipes."""
from __future__ import annotations

from rich.tree import Tree

from kinmerge.lineage.record import Lineage, LineageRecord


def describe(rec: LineageRecord) -> str:
    parts = [f"[bold]{rec.name}[/] [dim]{rec.id}[/]"]
    if rec.method:
        parts.append(f"{rec.method}")
    if rec.generation is not None:
        parts.append(f"gen {rec.generation}")
    if rec.scores:
        parts.append("scores " + ", ".join(f"{k}={v:.4g}" for k, v in rec.scores.items()))
    if rec.parent_kinship:
        parts.append("parent kinship " + ", ".join(f"{k}={v:.4g}"
                                                   for k, v in rec.parent_kinship.items()))
    if rec.merge_gain is not None:
        parts.append(f"gain {rec.merge_gain:+.4g}")
    if rec.is_root:
        parts.append(f"root: {rec.ref}")
    return " · ".join(parts)


def tree(lin: Lineage, *, recipes: bool = True) -> Tree:
    """A rich Tree from the model down to its roots (a shared ancestor appears under each
    child that descends from it)."""
    records = lin.all()

    def add(node: Tree, rid: str, depth: int) -> None:
        rec = records.get(rid)
        if rec is None:
            node.add(f"[red]unknown ancestor {rid}[/]")
            return
        branch = node.add(describe(rec))
        if recipes and rec.recipe:
            branch.add("[dim]" + rec.recipe.rstrip().replace("[", "\\[") + "[/]")
        for p in rec.parents:
            add(branch, p, depth + 1)

    root = Tree(describe(lin.model))
    if recipes and lin.model.recipe:
        root.add("[dim]" + lin.model.recipe.rstrip().replace("[", "\\[") + "[/]")
    for p in lin.model.parents:
        add(root, p, 1)
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
