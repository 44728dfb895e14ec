"""The family tree draws parents -> child edges only, and marks the best model's lineage."""
from kinmerge.lineage.graph import build, lineage_of_best
from kinmerge.lineage.record import LineageRecord

RECIPE = ("merge_method: task_arithmetic\nbase_model: zoo/base\nmodels:\n"
          "- model: zoo/rev\n- model: zoo/sort\n")


def test_the_base_is_no_parent_and_the_best_lineage_is_marked():
    recs = {r.id: r for r in [
        LineageRecord(id="base", name="base", ref="zoo/base"),
        LineageRecord(id="rev", name="rev", ref="zoo/rev", scores={"fitness": 0.5},
                      generation=0),
        LineageRecord(id="sort", name="sort", ref="zoo/sort", scores={"fitness": 0.49},
                      generation=0),
        LineageRecord(id="add", name="add", ref="zoo/add", scores={"fitness": 0.0},
                      generation=0),
        LineageRecord(id="c1", name="g1-01", ref="runs/b/g1-01", parents=["rev", "sort", "base"],
                      recipe=RECIPE, scores={"fitness": 0.95}, generation=1),
    ]}
    g = build(recs)
    assert sorted(g.edges) == [("rev", "c1"), ("sort", "c1")]
    assert "base" not in g and "add" in g  # a pool model stays, even without children
    assert lineage_of_best(g) == {"c1", "rev", "sort"}
