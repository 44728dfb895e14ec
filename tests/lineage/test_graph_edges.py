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


def test_a_demo_folder_reads_the_breed_runs_family_json_below_it(tmp_path):
    """The demo's tree is drawn from OUT: the pool's scores live in OUT/breed/family.json,
    the models' lineage.json files embed the pool records without them."""
    import json

    from kinmerge.lineage.graph import collect
    from kinmerge.lineage.record import Lineage, write

    pool = LineageRecord(id="rev", name="rev", ref="./zoo/rev")
    child = LineageRecord(id="c1", name="g1-01", parents=["rev"], generation=1)
    (tmp_path / "breed/models/g1-01").mkdir(parents=True)
    write(tmp_path / "breed/models/g1-01", Lineage(model=child, ancestors={"rev": pool}))
    scored = pool.model_copy(update={"scores": {"fitness": 0.515}, "generation": 0})
    (tmp_path / "breed/family.json").write_text(json.dumps(
        [scored.model_dump(mode="json"), child.model_dump(mode="json")]))
    recs = collect(tmp_path)
    assert recs["rev"].scores == {"fitness": 0.515} and recs["c1"].parents == ["rev"]
    assert collect(tmp_path / "breed/models/g1-01")["rev"].scores == {}
