"""The family tree as a person reads it: parents -> child arrows only, no two labels on top
of each other (measured by the renderer), nothing outside the figure, and exactly the
winner and its ancestors in red. Two realistic families: a breed run of 20 models over four
generations, and an evolve run (PS then DFS) beside the experts it merged."""
from __future__ import annotations

import itertools

import pytest
from matplotlib.colors import to_hex
from matplotlib.text import Text

from kinmerge.lineage.record import LineageRecord
from kinmerge.lineage.tree import HIGHLIGHT, figure, label_of

BASE = "./zoo/base"
EXPERTS = ["add", "add_seed2", "rev", "sort"]


def _recipe(parents: list[str]) -> str:
    models = "".join(f"- model: {p}\n" for p in parents)
    return f"merge_method: task_arithmetic\nbase_model: {BASE}\nmodels:\n{models}"


def _child(name: str, gen: int, parents: list[str], score: float, kin: float,
           refs: dict[str, str]) -> LineageRecord:
    refs[name] = f"runs/breed/models/{name}"
    return LineageRecord(id=name, name=name, ref=refs[name], generation=gen,
                         parents=[*parents, "base"],  # as breed records them: base too
                         recipe=_recipe([refs[p] for p in parents]),
                         scores={"fitness": score}, parent_kinship={"pcc": kin})


def breed_family() -> tuple[dict[str, LineageRecord], set[str]]:
    """20 models: 4 experts, then 6 + 5 + 5 children; g3-02 wins. Returns the records and
    the winner's lineage, written out by hand."""
    refs = {n: f"./zoo/{n}" for n in EXPERTS}
    recs = [LineageRecord(id="base", name="base", ref=BASE)] + [
        LineageRecord(id=n, name=n, ref=refs[n], generation=0,
                      scores={"fitness": s}) for n, s in zip(EXPERTS, [.41, .40, .50, .49])]
    gens = {1: [["rev", "sort"], ["add", "rev"], ["add", "sort"], ["add_seed2", "rev"],
                ["add_seed2", "sort"], ["add", "add_seed2"]],
            2: [["g1-01", "g1-02"], ["g1-01", "g1-03"], ["g1-02", "sort"], ["g1-01", "add"],
                ["g1-04", "g1-05"]],
            3: [["g2-01", "g2-02"], ["g2-01", "g1-03"], ["g2-03", "g2-04"], ["g2-02", "rev"],
                ["g2-05", "add_seed2"]]}
    scores = {1: [.90, .62, .60, .55, .51, .44], 2: [.93, .91, .70, .66, .58],
              3: [.94, .96, .80, .77, .60]}
    for gen, pairs in gens.items():
        for i, (pair, s) in enumerate(zip(pairs, scores[gen]), 1):
            recs.append(_child(f"g{gen}-{i:02d}", gen, pair, s, 0.2 + 0.1 * i, refs))
    lineage = {"g3-02", "g2-01", "g1-03", "g1-01", "g1-02", "rev", "sort", "add"}
    return {r.id: r for r in recs}, lineage


def evolve_family() -> tuple[dict[str, LineageRecord], set[str]]:
    """An evolve run's models (no generations recorded): the PS winner merges three experts,
    the DFS winner stacks it with one of them; a hand merge scored beside them."""
    refs = {n: f"./zoo/{n}" for n in EXPERTS}
    recs = [LineageRecord(id="base", name="base", ref=BASE)] + [
        LineageRecord(id=n, name=n, ref=refs[n], scores={"add": s, "rev": s})
        for n, s in zip(EXPERTS, [.45, .40, .50, .48])]

    def merged(name: str, parents: list[str], score: float) -> LineageRecord:
        refs[name] = f"runs/evo/{name}"
        return LineageRecord(id=name, name=name, ref=refs[name], parents=[*parents, "base"],
                             recipe=_recipe([refs[p] for p in parents]),
                             scores={"add": score, "rev": score}, parent_kinship={"cs": 0.31})

    recs += [merged("ps-best-model", ["add", "rev", "sort"], .81),
             merged("task_arithmetic-w0.75-hand-recipe", ["add", "rev"], .55),
             merged("best-model", ["ps-best-model", "rev"], .87)]
    return {r.id: r for r in recs}, {"best-model", "ps-best-model", "add", "rev", "sort"}


def _extent(t: Text, renderer):
    patch = t.get_bbox_patch()
    return patch.get_window_extent(renderer) if patch is not None else \
        t.get_window_extent(renderer)


@pytest.mark.parametrize("family", [breed_family, evolve_family])
def test_labels_do_not_overlap_and_stay_inside(family):
    records, _ = family()
    tree = figure(records)
    fig = tree.fig
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_text() and t.get_visible()]
    labels = [t for t in texts if t.axes is None or t.axes is tree.fig.axes[0]]
    assert len(labels) >= len(tree.boxes) + 2  # boxes, generation names, title, caption
    boxes = [(t.get_text(), _extent(t, renderer)) for t in labels]
    clashes = [(a, b) for (a, ea), (b, eb) in itertools.combinations(boxes, 2)
               if ea.overlaps(eb)]
    assert clashes == []
    page = fig.bbox
    outside = [t.get_text() for t in texts
               if not (page.x0 - 0.5 <= _extent(t, renderer).x0
                       and _extent(t, renderer).x1 <= page.x1 + 0.5
                       and page.y0 - 0.5 <= _extent(t, renderer).y0
                       and _extent(t, renderer).y1 <= page.y1 + 0.5)]
    assert outside == []


def test_breed_family_arrows_are_parent_to_child_only_and_the_winner_lineage_is_red():
    records, lineage = breed_family()
    tree = figure(records)
    want = {(p, r.id) for r in records.values() for p in r.parents if p != "base"}
    assert len(want) == 32 and set(tree.arrows) == want  # never base -> child
    assert "base" not in tree.boxes and len(tree.boxes) == 20
    red = {n for n, t in tree.boxes.items()
           if to_hex(t.get_bbox_patch().get_edgecolor()) == HIGHLIGHT}
    assert red == lineage == set(tree.lineage)
    red_arrows = {e for e, a in tree.arrows.items() if to_hex(a.get_edgecolor()) == HIGHLIGHT}
    assert red_arrows == {(p, c) for p, c in want if p in lineage and c in lineage}
    assert tree.boxes["g3-02"].get_text() == "g3-02\n0.960 · k 0.40"


def test_evolve_family_columns_follow_the_parents_and_long_names_are_cut():
    records, lineage = evolve_family()
    tree = figure(records)
    red = {n for n, t in tree.boxes.items()
           if to_hex(t.get_bbox_patch().get_edgecolor()) == HIGHLIGHT}
    assert red == lineage
    x = {n: t.get_position()[0] for n, t in tree.boxes.items()}
    assert x["add"] == x["sort"] < x["ps-best-model"] < x["best-model"]
    assert tree.boxes["task_arithmetic-w0.75-hand-recipe"].get_text() == (
        "task_arithmetic-w…\n0.550 · k 0.31")
    assert set(tree.arrows) == {("add", "ps-best-model"), ("rev", "ps-best-model"),
                                ("sort", "ps-best-model"), ("ps-best-model", "best-model"),
                                ("rev", "best-model"), ("add", "task_arithmetic-w0.75-hand-recipe"),
                                ("rev", "task_arithmetic-w0.75-hand-recipe")}


def test_a_label_without_score_or_kinship_is_the_name():
    assert label_of({"name": "add", "score": None, "kinship": None}) == "add"
    assert label_of({"name": "g1-01", "score": 0.5, "kinship": None}) == "g1-01\n0.500"


@pytest.mark.parametrize("family", [breed_family, evolve_family])
def test_no_arrow_runs_through_a_box_it_does_not_join(family):
    """An arrow that crosses an unrelated box reads as a parent it is not: arrows that
    skip a generation bend around the boxes in their way."""
    records, _ = family()
    tree = figure(records)
    fig = tree.fig
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    boxes = {n: t.get_bbox_patch().get_window_extent(renderer) for n, t in tree.boxes.items()}
    crossings = []
    for (a, b), arrow in tree.arrows.items():
        line = arrow.get_path()  # the shaft and head, in data coordinates
        pts = [ax.transData.transform(p) for poly in line.to_polygons(closed_only=False)
               for p0, p1 in zip(poly[:-1], poly[1:]) for p in
               (p0 + (p1 - p0) * i / 8 for i in range(9))]
        crossings += [(a, b, n) for n, e in boxes.items() if n not in (a, b) and any(
            e.x0 + 1 < x < e.x1 - 1 and e.y0 + 1 < y < e.y1 - 1 for x, y in pts)]
    assert crossings == [], crossings


def test_layout_stacks_by_score_and_gives_each_skipping_arrow_a_lane():
    from kinmerge.lineage.graph import build
    from kinmerge.lineage.layout import layout

    records, _ = breed_family()
    g = build(records)
    lay = layout(g, {n: (40.0, 20.0) for n in g})
    gen1 = sorted((n for n in g if lay.column_of[n] == 1), key=lambda n: -lay.boxes[n][1])
    assert gen1 == [f"g1-0{i}" for i in range(1, 7)]  # best score on top
    skips = {(a, b, c) for a, b in g.edges
             for c in range(lay.column_of[a] + 1, lay.column_of[b])}
    assert set(lay.passages) == skips and len(skips) == 7  # e.g. rev -> g3-04 crosses gen 1, 2
    assert ("rev", "g3-04", 1) in skips and ("rev", "g3-04", 2) in skips
