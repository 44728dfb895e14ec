"""The family tree as a picture: generations as columns, each model a box (its name, score
and the kinship of its parents) coloured by score, arrows from parents to child, and the
winner with all its ancestors in red.

The boxes are measured by the renderer before `layout` places them (columns as wide as
their widest box, rows as tall as the tallest, the figure grown to hold them), so no two
labels overlap however many models a generation holds, and no arrow runs through a box it
does not join.

>>> draw(collect("runs/breed"), "family.svg")              # doctest: +SKIP
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from kinmerge.figures import pyplot, save
from kinmerge.lineage.graph import build, lineage_of_best
from kinmerge.lineage.layout import GEN_BAND, MARGIN, Layout, arrow_path, entries, layout
from kinmerge.lineage.record import LineageRecord

log = logging.getLogger(__name__)

LABEL_CHARS = 18  # a longer name is cut (the records keep it)
FONT = 8  # points
PAD = 0.35  # a box's padding, in font sizes
CBAR_BAND = 72.0  # points, right of the drawing
HIGHLIGHT, PLAIN, UNSCORED = "#d62728", "#555555", "#eeeeee"
TITLE = "family tree"
CAPTION = ("arrows: parent → child · box: model, fitness (search) · "
           "k = kinship of its parents · red: the winner and its ancestors")


@dataclass(frozen=True)
class Tree:
    """A drawn family tree: the figure, each model's box and each parent → child arrow."""

    fig: object  # matplotlib Figure
    boxes: dict[str, object]  # model id -> its Text (the box is its bbox patch)
    arrows: dict[tuple[str, str], object]  # (parent id, child id) -> FancyArrowPatch
    lineage: frozenset[str]  # the winner and its ancestors


def label_of(node: dict) -> str:
    """A box's text: the (cut) name, then its score and its parents' kinship."""
    name = node["name"]
    name = name if len(name) <= LABEL_CHARS else name[:LABEL_CHARS - 1] + "…"
    facts = ([f"{node['score']:.3f}"] if node["score"] is not None else []) + (
        [f"k {node['kinship']:.2f}"] if node.get("kinship") is not None else [])
    return "\n".join([name, " · ".join(facts)] if facts else [name])


def figure(records: dict[str, LineageRecord], *, title: str | None = None) -> Tree:
    """The family tree of `records` as a figure (not written; `draw` writes it)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    plt = pyplot()
    g = build(records)
    best = lineage_of_best(g)
    scores = [d["score"] for _, d in g.nodes(data=True) if d["score"] is not None]
    norm = Normalize(min(scores), max(scores)) if scores else None
    cmap = plt.get_cmap("viridis")
    fig = plt.figure()
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    boxes = {n: _box(ax, d, n in best, norm, cmap) for n, d in g.nodes(data=True)}
    renderer = fig.canvas.get_renderer()
    sizes = {n: _size(t, renderer, fig.dpi) for n, t in boxes.items()}
    lay = layout(g, sizes)
    pos = lay.boxes
    for n, t in boxes.items():
        t.set_position(pos[n])
    entry = entries(lay, list(g.edges))
    arrows = {(a, b): _arrow(ax, lay, a, b, entry[(a, b)], a in best and b in best)
              for a, b in g.edges}
    cols = {d["column"]: d["gen"] for _, d in g.nodes(data=True)}
    for c, gen in sorted(cols.items()):
        xs = [pos[n][0] for n, d in g.nodes(data=True) if d["column"] == c]
        ax.text(sum(xs) / len(xs), GEN_BAND / 2, f"gen {gen}", ha="center", va="center",
                fontsize=FONT, color=PLAIN)
    _frame(fig, ax, lay, title or TITLE, ScalarMappable(norm=norm, cmap=cmap) if norm else None)
    return Tree(fig, boxes, arrows, frozenset(best))


def _frame(fig, ax, lay: Layout, title: str, scale) -> None:
    """Size the figure to the layout plus a title, a caption and the score's colour `scale`
    (None: no scores), with one data unit one point, so the measured boxes fit as laid out."""
    renderer = fig.canvas.get_renderer()
    heads = [fig.text(0, 0, title, fontsize=FONT + 2, weight="bold", va="top"),
             fig.text(0, 0, CAPTION, fontsize=FONT - 1, color=PLAIN, va="top")]
    head_sizes = [_size(t, renderer, fig.dpi, pad=0) for t in heads]
    width = max(lay.width, max(w for w, _ in head_sizes) + 2 * MARGIN)
    total_w = width + (CBAR_BAND if scale is not None else 0)
    total_h = lay.height + sum(h for _, h in head_sizes) + MARGIN
    fig.set_size_inches(total_w / 72, total_h / 72)
    ax.set_position((0, 0, width / total_w, lay.height / total_h))
    ax.set_xlim(0, width)
    ax.set_ylim(0, lay.height)
    top = total_h - MARGIN / 2
    for t, (_, h) in zip(heads, head_sizes):
        t.set_position((MARGIN / total_w, top / total_h))
        top -= h + 2
    if scale is not None:
        cax = fig.add_axes(((width + 6) / total_w, (GEN_BAND + MARGIN) / total_h,
                            10 / total_w, max(lay.height - GEN_BAND - 2 * MARGIN, 20) / total_h))
        fig.colorbar(scale, cax=cax, label="fitness (search)")


def draw(records: dict[str, LineageRecord], out: str | Path, *, title: str | None = None) -> Path:
    """Write the family tree to `out`; the suffix (.svg, .png, .pdf) picks the format."""
    tree = figure(records, title=title)
    out = save(tree.fig, out, dpi=110, tight=False)
    log.info("family tree of %d models written to %s", len(tree.boxes), out)
    return out


def _box(ax, node: dict, marked: bool, norm, cmap):
    """One model's label in a box: filled by score, edged red on the winner's lineage."""
    fill = UNSCORED if node["score"] is None or norm is None else cmap(norm(node["score"]))
    r, g, b = (fill if isinstance(fill, tuple) else (0.93, 0.93, 0.93))[:3]
    ink = "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"
    return ax.text(0, 0, label_of(node), ha="center", va="center", fontsize=FONT,
                   color=ink, zorder=3, weight="bold" if marked else "normal",
                   bbox={"boxstyle": f"round,pad={PAD}", "fc": fill,
                         "ec": HIGHLIGHT if marked else PLAIN, "lw": 2.0 if marked else 0.8})


def _size(text, renderer, dpi: float, pad: float = PAD) -> tuple[float, float]:
    """(width, height) in points of `text` with its box's padding and edge."""
    ext = text.get_window_extent(renderer)
    extra = 2 * pad * text.get_fontsize() + (4 if pad else 0)
    return ext.width * 72 / dpi + extra, ext.height * 72 / dpi + extra


def _arrow(ax, lay: Layout, a: str, b: str, entry_y: float, marked: bool):
    """The arrow from box a to box b along its laid-out path."""
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path as MplPath

    verts, codes = arrow_path(lay, a, b, entry_y)
    arrow = FancyArrowPatch(path=MplPath(verts, codes), arrowstyle="-|>", mutation_scale=10,
                            color=HIGHLIGHT if marked else "#999999",
                            lw=2.0 if marked else 0.9, zorder=2 if marked else 1)
    ax.add_patch(arrow)
    return arrow
