"""examples/evolve-zoo.yml, wired end to end on a tiny zoo (seconds to train; scores ~0)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kinmerge.search.evolve import evolve, load_evolve_config
from kinmerge.search.evolve.candidate import build_candidate
from kinmerge.evaluate.tasks import TaskSpec
from kinmerge.search.evolve.scoring import builtin_scorer

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    zoo = pytest.importorskip("kinmerge.zoo")
    if not hasattr(zoo, "build_zoo"):
        pytest.skip("the trained zoo is not available")
    return zoo.build_zoo(tmp_path_factory.mktemp("z") / "zoo", zoo.ZooConfig.tiny())


def on_tiny(name: str, root: Path, **over) -> dict:
    text = (EXAMPLES / name).read_text().replace("zoo/sort", "zoo/add_seed2")
    text = text.replace("tasks/sort/", "tasks/add/").replace("zoo/", f"{root}/")
    cfg = yaml.safe_load(text)
    cfg.update(over)
    return cfg


@pytest.mark.parametrize("name", ["evolve-zoo.yml", "evolve-dfs-zoo.yml"])
def test_examples_parse(name):
    assert load_evolve_config(EXAMPLES / name).fitness.tasks


def test_builtin_task_scores_the_candidate_module(tiny_zoo):
    """A task scores the candidate's own module through kinmerge.evaluate's ExactMatch."""
    from kinmerge.evaluate import ExactMatch
    from kinmerge.core.recipe import load_recipe

    task = TaskSpec(name="add", search=str(tiny_zoo / "tasks/add/search.jsonl"),
                    options={"max_examples": 8})
    score = builtin_scorer(task)
    recipe = load_recipe({"merge_method": "passthrough",
                          "models": [{"model": str(tiny_zoo / "add")}]})
    cand = build_candidate(recipe)
    want = ExactMatch(task.search, name="add", max_examples=8)(str(tiny_zoo / "add"))["add"]
    assert score(cand, "search") == want
    with pytest.raises(Exception, match="unknown evaluator 'exact'"):
        builtin_scorer(task.model_copy(update={"evaluator": "exact"}))


def test_zoo_example_runs(tiny_zoo, tmp_path):
    cfg = on_tiny("evolve-zoo.yml", tiny_zoo, budget={"trials": 3},
                  baselines={"weights": [1.0], "densities": [0.5]})
    s = evolve(cfg, tmp_path / "run").summary.to_dict()
    assert s["mode"] == "ps" and s["trials"] == 3
    assert set(s["baselines_heldout"]) == {"task_arithmetic-w1", "ties-w1-d0.5",
                                           "dare_ties-w1-d0.5"}
    assert set(s["best_heldout_scores"]) == {"add", "rev", "sort"}


def test_lm_eval_fitness(tiny_zoo, tmp_path, monkeypatch):
    """An lm-eval task (a local YAML over the zoo's multiple-choice file) as the fitness."""
    pytest.importorskip("lm_eval")
    pytest.importorskip("accelerate")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from kinmerge.evaluate.lm_eval import write_local_task

    tasks = tmp_path / "tasks"
    write_local_task(tasks, "zoo_add_mc", tiny_zoo / "tasks/add/choices.jsonl",
                     kind="multiple_choice")
    cfg = {"mode": "ps", "base_model": str(tiny_zoo / "base"),
           "models": [str(tiny_zoo / "add"), str(tiny_zoo / "add_seed2")],
           "search": {"params": {"weight": [0, 1]}},
           "template": {"merge_method": "task_arithmetic", "dtype": "float32"},
           "fitness": {"lm_eval": [{"task": "zoo_add_mc", "metric": "acc", "limit": 8,
                                    "include_path": str(tasks)}]},
           "budget": {"trials": 2}, "baselines": {"grid": False}, "seed": 0}
    s = evolve(cfg, tmp_path / "run").summary.to_dict()
    assert s["trials"] == 2 and 0.0 <= s["best_heldout"] <= 1.0
