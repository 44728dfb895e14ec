"""Breeding fixtures: a pool of four fine-tunes of one synthetic base, and stand-ins."""
from __future__ import annotations

import pytest

from breed_standins import TargetFitness, kinship_fn, mean_target
from kinmerge.zoo.synthetic import synthetic_llama


@pytest.fixture(scope="session")
def pool(tmp_path_factory):
    """A float32 base (5 layers, so SLERP's gradients have a layer per anchor) and four
    fine-tunes."""
    root = tmp_path_factory.mktemp("pool")
    kw = dict(layers=5, hidden=16, intermediate=24, vocab=40)
    base = synthetic_llama(root / "base", seed=0, **kw)
    fts = [synthetic_llama(root / name, base=base, seed=i, delta=0.05, **kw)
           for i, name in enumerate(["add", "rev", "mul", "cap"], start=1)]
    return {"base": str(base), "ft": [str(f) for f in fts], "root": root}


@pytest.fixture(scope="session")
def config(pool):
    def make(**over):
        cfg = {"pool": pool["ft"], "base_model": pool["base"],
               "fitness": {"function": "breed_standins:unused"},
               "operator": {"merge_method": "slerp", "dtype": "float32",
                            "parameters": {"t": [{"filter": "self_attn",
                                                  "value": [0, 0.5, 0.3, 0.7, 1]},
                                                 {"filter": "mlp",
                                                  "value": [1, 0.5, 0.7, 0.3, 0]},
                                                 {"value": 0.5}]}},
               "k": 3, "kinship": {"metric": "pcc", "threshold": None},
               "budget": {"generations": 4}}
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key] = {**cfg[key], **value}
            else:
                cfg[key] = value
        return cfg
    return make


@pytest.fixture(scope="session")
def fitness(pool):
    return lambda **kw: TargetFitness(pool["base"], mean_target(pool), **kw)


@pytest.fixture(scope="session")
def kin():
    return kinship_fn()


@pytest.fixture(scope="session")
def full_run(config, fitness, kin, tmp_path_factory):
    """One finished run with exploration (generation limit 4), shared by read-only tests."""
    from kinmerge.search.breed import breed

    out = tmp_path_factory.mktemp("full") / "run"
    return breed(config(explore=True), out, fitness=fitness(), kinship_fn=kin).summary, out
