"""Report fixtures: a small finished breed run (synthetic pool, fake fitness) and an
evolve-like folder with nothing but its own files."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "breed"))  # the breeding stand-ins

from breed_standins import TargetFitness, kinship_fn, mean_target  # noqa: E402
from kinmerge.zoo.synthetic import synthetic_llama  # noqa: E402


@pytest.fixture(scope="session")
def breed_run(tmp_path_factory):
    from kinmerge.search.breed import breed

    root = tmp_path_factory.mktemp("report_pool")
    kw = dict(layers=5, hidden=16, intermediate=24, vocab=40)
    base = synthetic_llama(root / "base", seed=0, **kw)
    fts = [str(synthetic_llama(root / n, base=base, seed=i, delta=0.05, **kw))
           for i, n in enumerate(["add", "rev", "mul"], start=1)]
    cfg = {"pool": fts, "base_model": str(base), "fitness": {"function": "unused:f"},
           "operator": {"merge_method": "slerp", "dtype": "float32",
                        "parameters": {"t": 0.5}},
           "kinship": {"threshold": None}, "budget": {"generations": 3}}
    pool = {"base": str(base), "ft": fts}
    out = root / "run"
    breed(cfg, out, fitness=TargetFitness(str(base), mean_target(pool)),
          kinship_fn=kinship_fn(), plots=False)
    return out


@pytest.fixture
def evolve_like(tmp_path):
    """What an evolve run leaves: summary.json, history.csv and its own fitness.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = tmp_path / "evo"
    d.mkdir()
    (d / "summary.json").write_text('{"mode": "ps", "best_search": 0.5, "trials": 3}')
    (d / "history.csv").write_text("trial,fitness,recipe\n0,0.1,a<b>\n1,0.5,c\n")
    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [0.1, 0.5, 0.4])
    fig.savefig(d / "fitness.png")
    plt.close(fig)
    return d
