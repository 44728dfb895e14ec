"""Breeding plans its workers' memory before the run starts, as evolution does: each worker
merges a child of two parents over the base and scores it."""
from __future__ import annotations

import math

import pytest
from safetensors import safe_open

from kinmerge.errors import KinmergeError
from kinmerge.search.breed import breed, load_breed_config
from kinmerge.search.memory import WORKER_RUNTIME, breed_memory_plan


def test_the_breed_plan_counts_a_child_of_two_parents(config, pool):
    plan = breed_memory_plan(load_breed_config(config()), workers=2)
    with safe_open(f"{pool['base']}/model.safetensors", "pt") as f:
        shapes = [f.get_slice(k).get_shape() for k in f.keys()]
    stored = sum(math.prod(s) * 4 for s in shapes)  # float32
    assert plan.sources == 5 * stored  # the base and the four pool models
    assert plan.model == stored and plan.cache == 0
    assert plan.merge == max(math.prod(s) for s in shapes) * 4 * 7  # 3 inputs, 3 vectors, out
    assert plan.runtime == WORKER_RUNTIME and plan.workers == 2


def test_breed_refuses_a_run_that_cannot_fit_before_writing(config, fitness, kin, tmp_path,
                                                            monkeypatch):
    import kinmerge.search.memory as memory

    monkeypatch.setattr(memory, "_available", lambda device: 10**9)
    with pytest.raises(KinmergeError) as e:
        breed(config(), tmp_path / "run", fitness=fitness(), kinship_fn=kin, workers=4)
    assert str(e.value).startswith("this run cannot fit: memory plan on cpu: ")
    assert " x 4 workers = " in str(e.value)
    assert "fix: run fewer --workers, or use a device with more memory" in str(e.value)
    assert not (tmp_path / "run").exists()
