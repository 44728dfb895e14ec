"""Where the family tree's boxes and arrows go, in points (`tree` draws them).

A layered layout: generations are columns, as wide as their widest box; a column stacks its
boxes (best score on top) and a thin passage for every arrow that crosses it on its way to a
later generation, placed where the arrow would cross anyway. An arrow leaves its parent at
the right side, bends only in the gaps between columns, runs straight through its passages,
and enters its child at the left side, so it never runs through a box it does not join.

>>> lay = layout(build(records), sizes)                         # doctest: +SKIP
>>> verts, codes = arrow_path(lay, "g1-01", "g2-03", entry_y=120.0)   # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

COL_GAP, ROW_GAP, PASSAGE = 56.0, 10.0, 7.0  # between columns; between boxes; an arrow's lane
MARGIN, GEN_BAND = 14.0, 18.0  # around the drawing; the band of generation names at the bottom
MOVETO, LINETO, CURVE4 = 1, 2, 4  # matplotlib.path.Path's codes


@dataclass(frozen=True)
class Layout:
    boxes: dict[str, tuple[float, float]]  # centre of each box
    sizes: dict[str, tuple[float, float]]  # (width, height) of each box
    column_of: dict[str, int]
    columns: dict[int, tuple[float, float]]  # left and right x of each column
    passages: dict[tuple[str, str, int], float]  # y where arrow (a, b) crosses column c
    width: float
    height: float


def layout(g: nx.DiGraph, sizes: dict[str, tuple[float, float]]) -> Layout:
    """Boxes of `sizes` (width, height) for the nodes of `g` (with a `column` and a `score`),
    and a passage for each arrow through each column it skips."""
    column_of = {n: d["column"] for n, d in g.nodes(data=True)}
    if not sizes:
        return Layout({}, {}, {}, {}, {}, 2 * MARGIN, GEN_BAND + MARGIN)
    pitch = max(h for _, h in sizes.values()) + ROW_GAP
    stacks: dict[int, list[str]] = {}
    for n in sorted(g, key=lambda n: (-_score(g, n), g.nodes[n]["name"])):
        stacks.setdefault(column_of[n], []).append(n)
    first, last = min(stacks), max(stacks)
    columns, x = {}, MARGIN
    for c in range(first, last + 1):
        w = max((sizes[n][0] for n in stacks.get(c, [])), default=PASSAGE)
        columns[c], x = (x, x + w), x + w + COL_GAP
    # a first guess without passages, to know where each skipping arrow would cross
    guess = {n: -(i - (len(ids) - 1) / 2) * pitch for ids in stacks.values()
             for i, n in enumerate(ids)}
    items: dict[int, list[tuple[float, int, object]]] = {
        c: [(guess[n], 0, n) for n in stacks.get(c, [])] for c in columns}
    for a, b in g.edges:
        ca, cb = column_of[a], column_of[b]
        for c in range(ca + 1, cb):
            t = (c - ca) / (cb - ca)
            items[c].append((guess[a] + t * (guess[b] - guess[a]), 1, (a, b)))
    tall = {c: sum(pitch if kind == 0 else PASSAGE for _, kind, _ in its)
            for c, its in items.items()}
    total = max(tall.values())
    boxes, passages = {}, {}
    for c, its in items.items():
        y = GEN_BAND + (total + tall[c]) / 2  # the top of this column's stack
        for _, kind, key in sorted(its, key=lambda it: (-it[0], it[1])):
            h = pitch if kind == 0 else PASSAGE
            if kind == 0:
                boxes[key] = (sum(columns[c]) / 2, y - h / 2)
            else:
                passages[(*key, c)] = y - h / 2
            y -= h
    return Layout(boxes, dict(sizes), column_of, columns, passages, x - COL_GAP + MARGIN,
                  GEN_BAND + total + MARGIN)


def _score(g: nx.DiGraph, n: str) -> float:
    s = g.nodes[n]["score"]
    return float("-inf") if s is None else s


def entries(lay: Layout, edges: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """The y each arrow enters its child at: a child's arrows spread down its left side in
    the order they arrive (the highest on top), so their heads do not pile up."""
    into: dict[str, list[tuple[float, str]]] = {}
    for a, b in edges:
        into.setdefault(b, []).append((_arrival(lay, a, b), a))
    out = {}
    for b, arrivals in into.items():
        arrivals.sort(key=lambda t: -t[0])
        span = lay.sizes[b][1] * 0.5
        step = span / (len(arrivals) - 1) if len(arrivals) > 1 else 0.0
        for i, (_, a) in enumerate(arrivals):
            out[(a, b)] = lay.boxes[b][1] + span / 2 - i * step if step else lay.boxes[b][1]
    return out


def _arrival(lay: Layout, a: str, b: str) -> float:
    """The y an arrow comes from just before its child's column."""
    before = lay.column_of[b] - 1
    return lay.passages.get((a, b, before), lay.boxes[a][1])


def arrow_path(lay: Layout, a: str, b: str, entry_y: float) -> tuple[list, list[int]]:
    """(vertices, matplotlib path codes) of the arrow from box a to box b."""
    (xa, ya), (xb, _) = lay.boxes[a], lay.boxes[b]
    ca, cb = lay.column_of[a], lay.column_of[b]
    end = (xb - lay.sizes[b][0] / 2 - 1, entry_y)
    if cb <= ca:  # a parent no older than its child (odd records): one plain curve
        verts = [(xa + lay.sizes[a][0] / 2 + 1, ya)]
        return _bend(verts, end), [MOVETO, CURVE4, CURVE4, CURVE4]
    verts, codes = [(xa + lay.sizes[a][0] / 2 + 1, ya), (lay.columns[ca][1], ya)], [MOVETO,
                                                                                  LINETO]
    for c in range(ca + 1, cb):  # through each skipped column's passage
        y = lay.passages[(a, b, c)]
        verts = _bend(verts, (lay.columns[c][0], y)) + [(lay.columns[c][1], y)]
        codes += [CURVE4, CURVE4, CURVE4, LINETO]
    return _bend(verts, end), codes + [CURVE4, CURVE4, CURVE4]


def _bend(verts: list, to: tuple[float, float]) -> list:
    """`verts` and a cubic S-curve from its last point to `to`: horizontal at both ends, and
    never left of its start or right of its end (it stays in the gap it crosses)."""
    (x1, y1), (x2, y2) = verts[-1], to
    half = (x2 - x1) / 2
    return verts + [(x1 + half, y1), (x2 - half, y2), (x2, y2)]
