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


@pytest.fixture
def evolve_run(tmp_path):
    """An evolve run folder as `kinmerge evolve` leaves it: 40 trials of history with long
    floats, genomes and recipes; baselines in summary.json in no particular order."""
    import json

    d = tmp_path / "evolve-run"
    d.mkdir()
    summary = {"mode": "ps", "trials": 40, "best_search": 0.6123456789012345,
               "best_heldout": 0.5377, "winner_beats_best_baseline": True,
               "best_baseline": "task_arithmetic-w0.75",
               "baselines_heldout": {"ties-w1-d0.5": 0.042, "task_arithmetic-w0.75": 0.198,
                                     "dare_ties-w1-d0.5": 0.087},
               "sources_heldout": {"base": 0.003, "rev": 0.355}}
    (d / "summary.json").write_text(json.dumps(summary))
    recipe = ("merge_method: dare_ties\nbase_model: ./zoo/base\nmodels:\n"
              + "".join(f"  - model: ./zoo/expert_with_a_long_name_{i}\n    parameters: "
                        f"{{weight: 0.{i}1234567, density: 0.{i}7654321}}\n" for i in range(3)))
    (d / "best.yml").write_text(recipe)
    rows = ["phase,generation,trial,state,fitness,seed,merge_seconds,scores,genome,recipe"]
    for t in range(40):
        rows.append(f"ps,{t // 9},{t},COMPLETE,{0.53770000000001 if t == 0 else t / 97},"
                    f"{1000 + t},0.0123456789,\"{{\"\"add\"\": 0.0, \"\"rev\"\": 0.855, "
                    f"\"\"sort\"\": 0.76}}\",\"[0.12345678, 0.98765432]\","
                    f"\"{recipe}\"")
    (d / "history.csv").write_text("\n".join(rows) + "\n")
    return d
