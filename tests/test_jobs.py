"""The one job shape of evolve and breed (kinmerge.search.jobs): what each driver hands a
runner, pickled as a process or Ray task receives it, and what `run_job` gives back."""
from __future__ import annotations

import math
import pickle

import pytest
import yaml

from kinmerge.errors import KinmergeError
from kinmerge.evaluate.fitness import as_fitness
from kinmerge.search.jobs import (ChildLineage, Folder, InMemory, Job, MergeInto, Result,
                                  run_job)

EMBED = "model.embed_tokens.weight"


def _recipe(family) -> dict:
    return {"merge_method": "linear", "dtype": "float32",
            "models": [{"model": family["ft"][0], "parameters": {"weight": 0.5}},
                       {"model": family["ft"][1], "parameters": {"weight": 0.5}}]}


def _embed_sum(candidate, split):
    return {"sum": float(candidate.tensors[EMBED].double().sum())}


def test_every_job_shape_pickles_as_a_worker_receives_it(family):
    recipe = _recipe(family)
    jobs = [Job("ps/3", InMemory(yaml.safe_dump(recipe), (1.0, 0.5), 2**20), '{"tasks": []}',
                "heldout", "cpu", 2, 256),
            Job("pool-a", Folder(family["ft"][0]), '{"tasks": []}', finite=True),
            Job("saved", Folder("/x/best-model", export=True), '{"tasks": []}'),
            Job("g1-01", MergeInto("/x/models/g1-01", recipe, 7, ("id-a", "id-b"),
                                   ChildLineage(1, (("pcc", 0.25),), 0.01, "ols")),
                '{"tasks": []}', threads=1, finite=True)]
    for job in jobs:
        assert pickle.loads(pickle.dumps(job)) == job
    r = Result("g1-01", {"t": 0.5}, 0.5, "host:1", 0.25, 0.125, 0.0, True)
    assert pickle.loads(pickle.dumps(r)) == r
    assert [j.path for j in jobs] == [None, family["ft"][0], "/x/best-model", "/x/models/g1-01"]
    assert [j.merges for j in jobs] == [False, False, False, True]
    assert jobs[3].model.lineage.fields() == {"generation": 1, "parent_kinship": {"pcc": 0.25},
                                              "predicted_gain": 0.01, "predicted_by": "ols"}
    assert ChildLineage(2).fields() == {"generation": 2, "parent_kinship": {}}


def test_in_memory_and_merged_into_a_folder_score_the_same(family, tmp_path):
    """Evolution's candidate (in memory) and breeding's child (a folder) of one recipe are
    the same model: one run_job, one score."""
    fit, recipe = as_fitness(_embed_sum), _recipe(family)
    mem = run_job(Job("mem", InMemory(yaml.safe_dump(recipe)), fit, threads=1))
    child = MergeInto(str(tmp_path / "child"), recipe, parent_ids=())
    disk = run_job(Job("disk", child, fit, threads=1, finite=True))
    assert (mem.key, disk.key) == ("mem", "disk")
    assert mem.fitness == disk.fitness == mem.scores["sum"]
    assert (mem.merged, disk.merged) == (False, True)
    assert mem.merge_seconds > 0 and disk.merge_seconds == 0
    assert (tmp_path / "child" / "lineage.json").is_file()
    again = run_job(Job("disk", child, fit, threads=1, finite=True))  # a finished folder
    assert not again.merged and again.fitness == disk.fitness


def test_a_nan_fitness_comes_back_or_raises_as_the_job_says(family):
    fit = as_fitness(lambda candidate, split: {"t": math.nan})
    back = run_job(Job("ps/0", Folder(family["ft"][0]), fit))  # evolve: a failed trial
    assert math.isnan(back.fitness)
    with pytest.raises(KinmergeError, match=r"the fitness of .* on the search split is nan"):
        run_job(Job("ft1", Folder(family["ft"][0]), fit, finite=True))  # breed: cannot rank
