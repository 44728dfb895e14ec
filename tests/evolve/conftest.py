"""Evolve tests: a tiny synthetic family and configs over it."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kinmerge.zoo.synthetic import synthetic_llama

HERE = Path(__file__).parent
if str(HERE) not in sys.path:  # evo_fitness must import in spawned workers and subprocesses
    sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def evofam(tmp_path_factory):
    """base/, ft1/, ft2/ (3 layers) and a 2-layer B model for DFS, float32."""
    root = tmp_path_factory.mktemp("evofam")
    kw = dict(hidden=16, intermediate=24, vocab=40)
    base = synthetic_llama(root / "base", layers=3, seed=0, **kw)
    for i in (1, 2):
        synthetic_llama(root / f"ft{i}", layers=3, base=base, seed=i, delta=0.05, **kw)
    synthetic_llama(root / "other", layers=2, seed=9, **kw)
    return root


@pytest.fixture
def ps_config(evofam):
    def make(**over) -> dict:
        cfg = {"mode": "ps", "base_model": str(evofam / "base"),
               "models": [str(evofam / "ft1"), str(evofam / "ft2")],
               "template": {"merge_method": "task_arithmetic", "dtype": "float32"},
               "search": {"params": {"weight": [0, 1]}},
               "fitness": {"function": "evo_fitness:closeness"},
               "budget": {"trials": 12}, "baselines": {"weights": [0.5]}, "seed": 0}
        cfg.update(over)
        return cfg
    return make
