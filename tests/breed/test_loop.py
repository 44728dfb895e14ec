"""The breeding loop on synthetic models with a deterministic fake fitness."""
import itertools
import json
import logging
from pathlib import Path

import pytest

from kinmerge import lineage
from kinmerge.search.breed import breed, load_breed_config
from kinmerge.search.breed.loop import Breeder
from kinmerge.search.breed.state import BreedState


def run(config, fitness, kin, out, **kw):
    return breed(config, out, fitness=fitness, kinship_fn=kin, plots=False, **kw).summary.to_dict()


def children(out):
    st = BreedState(Path(out) / "breed.db")
    try:
        return [r for r in st.models().values() if r.origin != "pool"]
    finally:
        st.close()


def test_generation_one_merges_every_pair(config, fitness, kin, pool, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="kinmerge.search.breed"):
        s = run(config(), fitness(), kin, tmp_path, generations=1)
    # the run's start says what it is doing, then a line per evaluation (logs, CI)
    said = [m for m in caplog.messages if m.startswith(("scoring the pool", "evaluated"))]
    assert said[0] == "scoring the pool: 4 models (a line as each is evaluated)"
    assert len(said) == 1 + 4 + 6
    kids = children(tmp_path)
    pool_names = ["add", "rev", "mul", "cap"]
    assert {frozenset(c.parents) for c in kids} == {
        frozenset(p) for p in itertools.combinations(pool_names, 2)}
    assert all(c.generation == 1 for c in kids)
    assert s["stop_reason"] == "generation limit"
    assert s["evaluations"] == 4 + 6
    assert [g["generation"] for g in s["generations"]] == [0, 1]


def test_no_pair_is_merged_twice_and_gains_are_recorded(full_run):
    s, out = full_run[0].to_dict(), full_run[1]
    kids = children(out)
    pairs = [frozenset(c.parents) for c in kids]
    assert len(pairs) == len(set(pairs)) and len(s["generations"]) >= 3
    for c in kids:  # lineage.json: parents' kinship, scores, gain = f(child) - mean f(parents)
        rec = lineage.read(c.path).model
        assert rec.generation == c.generation and "pcc" in rec.parent_kinship
        parents = [lineage.read(p.path).model if p.origin != "pool" else None
                   for p in kids if p.name in c.parents]
        assert rec.merge_gain is not None and "fitness" in rec.scores
        assert all(p is None or p.scores for p in parents)


def test_summary_has_the_documented_fields(full_run):
    s, out = full_run[0].to_dict(), full_run[1]
    saved = json.loads((out / "summary.json").read_text())
    assert saved == s
    for key, kind in {"explore": bool, "evaluations": int, "best_score": float,
                      "best_model": str, "stop_reason": str, "generations": list}.items():
        assert isinstance(s[key], kind), key
    for g in s["generations"]:
        assert isinstance(g["top_k"], list) and len(g["top_k"]) == 3
        assert isinstance(g["top_k_kinship"], float) and isinstance(g["best"], float)
    assert s["best_score"] == max(g["best"] for g in s["generations"])
    assert (out / "history.csv").read_text().count("\n") == 1 + s["evaluations"]


@pytest.mark.parametrize("over, reason", [
    ({"budget": {"evaluations": 7}}, "budget"),
    ({"budget": {"generations": 2}}, "generation limit"),
    ({"kinship": {"threshold": 0.3}}, "kinship threshold"),
])
def test_stop_rules(config, fitness, kin, tmp_path, over, reason):
    s = run(config(**over), fitness(), kin, tmp_path)
    assert s["stop_reason"] == reason
    if reason == "budget":
        assert s["evaluations"] == 7
    if reason == "kinship threshold":
        assert s["generations"][-1]["top_k_kinship"] >= 0.3
        assert all(g["top_k_kinship"] < 0.3 for g in s["generations"][:-1])


def test_top_k_unchanged_stops(config, kin, pool, tmp_path):
    # fitness = size of the delta: merging averages noise away, so the pool stays on top
    from breed_standins import flat_delta

    s = run(config(), lambda d: {"norm": float((flat_delta(d, pool["base"]) ** 2).sum())},
            kin, tmp_path)
    assert s["stop_reason"] == "top-k unchanged"
    assert s["generations"][-1]["top_k"] == s["generations"][0]["top_k"]


def test_exploration_picks_the_least_related_non_ancestor(tmp_path):
    cfg = load_breed_config({"pool": ["p1", "p2", "p3", "p4"], "base_model": "base",
                             "fitness": {"function": "m:f"}})
    st = BreedState(tmp_path / "db.sqlite")
    for n in ["p1", "p2", "p3", "p4"]:
        st.add_model(n, n, "root-" + n, 0)
    st.add_model("c", "c", "m-c", 1, ("p1", "p2"), "top-k")
    st.add_model("d", "d", "m-d", 2, ("c", "p3"), "top-k")
    for n, f in {"p1": .1, "p2": .2, "p3": .3, "p4": .4, "c": .5, "d": .9}.items():
        st.add_evaluation(n, f, {}, 0.0)
    # d's ancestors c, p1, p2, p3 are the least related but excluded; p4 is the answer
    kin = {"p1": .01, "p2": .02, "p3": .03, "c": .05, "p4": .5}
    b = Breeder(cfg, tmp_path, st, fitness=None,
                kinship_fn=lambda a, x, base, m: kin[x if a == "d" else a],
                present={"p1", "p2", "p3", "p4", "c", "d"})
    assert b.ancestors("d") == {"c", "p1", "p2", "p3"}
    assert b.least_related("d", set()) == "p4"
    assert b.least_related("d", {("p4", "d")}) is None  # already paired this generation
    st.close()


def test_exploration_children_are_recorded(full_run):
    s = full_run[0].to_dict()
    explored = [g["explored"] for g in s["generations"] if g["explored"]]
    assert explored
    for g in s["generations"][2:]:
        assert [m["origin"] for m in g["merged"]].count("explore") == (1 if g["explored"] else 0)


def test_resume_after_a_kill_redoes_nothing(config, fitness, kin, tmp_path, monkeypatch):
    import kinmerge.search.jobs as loop

    merged: list[str] = []
    real_merge = loop.merge

    def counting_merge(recipe, out, **kw):
        merged.append(Path(out).name)
        return real_merge(recipe, out, **kw)

    monkeypatch.setattr(loop, "merge", counting_merge)
    first = fitness(fail_after=12)
    with pytest.raises(RuntimeError, match="simulated kill"):
        run(config(explore=True), first, kin, tmp_path / "run")
    merged_first = list(merged)
    merged.clear()
    second = fitness()
    s = run(config(explore=True), second, kin, tmp_path / "run")
    assert not set(first.calls) & set(second.calls), "an evaluation was redone"
    assert len(first.calls) == 12
    # the merge killed before its evaluation stays done; nothing else is merged again
    assert not set(merged_first) & set(merged)
    assert len(first.calls) + len(second.calls) == s["evaluations"]
    # and the resumed run decides exactly as an uninterrupted one
    merged.clear()
    whole = run(config(explore=True), fitness(), kin, tmp_path / "whole")
    assert whole["generations"] == s["generations"]
    assert whole["stop_reason"] == s["stop_reason"]


def test_a_different_config_in_the_same_folder_is_refused(config, fitness, kin, tmp_path):
    from kinmerge.errors import KinmergeError

    run(config(), fitness(), kin, tmp_path, generations=1)
    with pytest.raises(KinmergeError, match="different configuration"):
        run(config(k=2), fitness(), kin, tmp_path)


def test_a_merge_finished_but_not_recorded_is_adopted(config, fitness, kin, tmp_path,
                                                       monkeypatch):
    """Killed between the merge's rename and the database commit: the folder is reused."""
    import kinmerge.search.jobs as loop
    from kinmerge.search.breed.state import BreedState as State

    real_add = State.add_model

    def crash_on_second_child(self, name, *a, **kw):
        if name == "g1-02":
            raise KeyboardInterrupt("killed")
        return real_add(self, name, *a, **kw)

    monkeypatch.setattr(State, "add_model", crash_on_second_child)
    with pytest.raises(KeyboardInterrupt):
        run(config(), fitness(), kin, tmp_path, generations=1)
    assert (tmp_path / "models" / "g1-02" / "lineage.json").is_file()
    monkeypatch.setattr(State, "add_model", real_add)
    merged = []
    real_merge = loop.merge
    monkeypatch.setattr(loop, "merge", lambda r, out, **kw: merged.append(Path(out).name)
                        or real_merge(r, out, **kw))
    s = run(config(), fitness(), kin, tmp_path, generations=1)
    assert "g1-01" not in merged and "g1-02" not in merged and len(merged) == 4
    assert s["evaluations"] == 10


def test_threads_is_an_argument_that_reaches_every_scoring(config, pool, kin, tmp_path,
                                                           monkeypatch):
    """breed(threads=N) runs each job's scoring with N torch threads, the environment
    untouched; without it, the policy's count (here KINMERGE_THREADS) applies: the control."""
    import torch

    from breed_standins import TargetFitness, mean_target

    class Seen(TargetFitness):
        def __call__(self, model_dir):
            self.threads.append(torch.get_num_threads())
            return super().__call__(model_dir)

    monkeypatch.setenv("KINMERGE_THREADS", "1")
    for threads, want in ((2, 2), (None, 1)):
        f = Seen(pool["base"], mean_target(pool))
        f.threads = []
        run(config(), f, kin, tmp_path / f"t{threads}", generations=1, threads=threads)
        assert f.threads and set(f.threads) == {want}, (threads, f.threads)
    from kinmerge.errors import KinmergeError
    with pytest.raises(KinmergeError, match="not a thread count: 0"):
        run(config(), Seen(pool["base"], mean_target(pool)), kin, tmp_path / "t0", threads=0)
