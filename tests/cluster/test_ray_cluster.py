"""Evolve and breed on a real multi-node Ray cluster (a head and two worker nodes on this
machine, ray.cluster_utils.Cluster), with a worker node removed mid-run — during the search,
during the held-out report, or during a resume. Each run must end as the sequential run
does: the same best model, history and counted evaluations; no job lost, none counted twice.

Slow (a cluster start, worker processes importing torch on every node): KINMERGE_SLOW=1.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from cluster_kit import HERE, Kit

pytestmark = pytest.mark.slow
for p in (HERE, HERE.parent / "evolve", HERE.parent / "breed"):
    if str(p) not in sys.path:  # the stand-in fitnesses, for the driver's sequential runs
        sys.path.insert(0, str(p))


@pytest.fixture(scope="module")
def kit():
    pytest.importorskip("ray")
    k = Kit(workers=2)
    yield k
    k.shutdown()


@pytest.fixture(scope="module")
def fam(tmp_path_factory):
    """base/, ft1/, ft2/ (the evolve tests' family) and a breeding pool of four fine-tunes."""
    from kinmerge.zoo.synthetic import synthetic_llama

    root = tmp_path_factory.mktemp("clusterfam")
    kw = dict(hidden=16, intermediate=24, vocab=40)
    base = synthetic_llama(root / "base", layers=3, seed=0, **kw)
    for i in (1, 2):
        synthetic_llama(root / f"ft{i}", layers=3, base=base, seed=i, delta=0.05, **kw)
    pbase = synthetic_llama(root / "pool" / "base", layers=5, seed=0, **kw)
    pool = [str(synthetic_llama(root / "pool" / n, layers=5, base=pbase, seed=i, delta=0.05,
                                **kw)) for i, n in enumerate(["add", "rev", "mul", "cap"], 1)]
    return {"root": root, "pool": {"base": str(pbase), "ft": pool}}


# --- evolve ----------------------------------------------------------------------------------

def evolve_cfg(fam, trials: int) -> dict:
    r = fam["root"]
    return {"mode": "ps", "base_model": str(r / "base"), "models": [str(r / "ft1"), str(r / "ft2")],
            "template": {"merge_method": "task_arithmetic", "dtype": "float32"},
            "search": {"params": {"weight": [0, 1]}},
            "fitness": {"function": "cluster_standins:trapped_closeness"},
            "budget": {"trials": trials}, "baselines": {"weights": [0.3, 0.7]}, "seed": 0}


SAME = ("phase", "trial", "generation", "state", "fitness", "seed", "scores", "genome", "recipe")


def evolve_record(out: Path) -> dict:
    """What must not depend on where or how the trials ran."""
    with open(out / "history.csv") as f:
        rows = [{k: r[k] for k in SAME} for r in csv.DictReader(f)]
    summary = json.loads((out / "summary.json").read_text())
    for k in ("wall_seconds", "timing"):
        summary.pop(k)
    return {"history": rows, "summary": summary, "best": (out / "best.yml").read_text()}


@pytest.fixture(scope="module")
def evolve_seq(fam, tmp_path_factory):
    """Sequential (inline) runs: 13 trials; 7 trials then resumed to 13."""
    from kinmerge.search.evolve import evolve

    root = tmp_path_factory.mktemp("evoseq")
    evolve(evolve_cfg(fam, 13), root / "full")
    evolve(evolve_cfg(fam, 7), root / "resumed")
    evolve(evolve_cfg(fam, 13), root / "resumed", resume=True)
    return {k: evolve_record(root / k) for k in ("full", "resumed")}


def check_evolve(rec: dict, seq: dict, kit: Kit) -> None:
    assert rec == seq
    assert all(r["state"] == "COMPLETE" for r in rec["history"])  # none lost, none failed
    assert rec["summary"]["trials"] == len(rec["history"]) == 13  # none counted twice
    lost_node_redid_its_job(kit)


def lost_node_redid_its_job(kit: Kit) -> None:
    """The control: the trap fired, its node was removed, and the job it held ran again on
    another node (calls: split, what, node)."""
    assert len(kit.removed) == 1, "the trap never fired: no node was lost"
    calls = kit.calls()
    lost = [c for c in calls if c[2] == kit.removed[0]]
    victim = (kit.trapdir / "arm").read_text().split()
    held = [c for c in calls if c[0] == victim[0]][int(victim[1]) - 1]
    assert held[2] == kit.removed[0] and held in lost
    assert any(c[:2] == held[:2] and c[2] != held[2] for c in calls), "the lost job never reran"
    kit.removed.clear()


@pytest.mark.parametrize("split,k", [("search", 4), ("heldout", 2)])
def test_evolve_loses_a_node(kit, fam, evolve_seq, tmp_path, split, k):
    from kinmerge.search.evolve import evolve

    kit.arm(split, k)
    with kit.remove_trapped_node():
        evolve(evolve_cfg(fam, 13), tmp_path / "run", workers=2, backend="ray",
               ray_address=kit.address)
    check_evolve(evolve_record(tmp_path / "run"), evolve_seq["full"], kit)


def test_evolve_resume_loses_a_node(kit, fam, evolve_seq, tmp_path):
    from kinmerge.search.evolve import evolve

    kit.arm("none", 1)
    evolve(evolve_cfg(fam, 7), tmp_path / "run", workers=2, backend="ray",
           ray_address=kit.address)
    kit.arm("search", 3)
    with kit.remove_trapped_node():
        evolve(evolve_cfg(fam, 13), tmp_path / "run", workers=2, backend="ray",
               ray_address=kit.address, resume=True)
    check_evolve(evolve_record(tmp_path / "run"), evolve_seq["resumed"], kit)


# --- breed -----------------------------------------------------------------------------------

def breed_cfg(fam, generations: int) -> dict:
    p = fam["pool"]
    return {"pool": p["ft"], "base_model": p["base"],
            "fitness": {"function": "breed_standins:unused"},
            "operator": {"merge_method": "slerp", "dtype": "float32",
                         "parameters": {"t": [{"filter": "self_attn",
                                               "value": [0, 0.5, 0.3, 0.7, 1]},
                                              {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]},
                                              {"value": 0.5}]}},
            "k": 3, "kinship": {"metric": "pcc", "threshold": None}, "explore": True,
            "budget": {"generations": generations}}


def breed_run(fam, out: Path, generations: int, **kw) -> dict:
    from breed_standins import kinship_fn, mean_target
    from cluster_standins import TrappedScore
    from kinmerge.search.breed import breed

    fit = TrappedScore(fam["pool"]["base"], mean_target(fam["pool"]))
    return breed(breed_cfg(fam, generations), out, fitness=fit, kinship_fn=kinship_fn(),
                 plots=False, **kw).summary.to_dict()


def breed_record(out: Path, summary: dict) -> dict:
    from safetensors.torch import load_file

    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    for r in rows:  # folders differ by run; everything else must not
        r["path"] = Path(r["path"]).name
    weights = {}
    for child in sorted((out / "models").iterdir()):
        w = load_file(str(child / "model.safetensors"))
        weights[child.name] = {k: v.numpy().tobytes() for k, v in w.items()}
    return {"summary": {k: v for k, v in summary.items() if k != "best_path"},
            "history": rows, "weights": weights}


@pytest.fixture(scope="module")
def breed_seq(fam, tmp_path_factory):
    root = tmp_path_factory.mktemp("breedseq")
    full = breed_run(fam, root / "full", 4)
    breed_run(fam, root / "resumed", 2)
    resumed = breed_run(fam, root / "resumed", 4)
    return {"full": breed_record(root / "full", full),
            "resumed": breed_record(root / "resumed", resumed)}


def check_breed(rec: dict, seq: dict, kit: Kit) -> None:
    assert rec == seq  # same summary (best model, its fitness, evaluations), history, bytes
    assert len(seq["summary"]["generations"]) >= 3
    lost_node_redid_its_job(kit)


def test_breed_loses_a_node(kit, fam, breed_seq, tmp_path):
    kit.arm("search", 6)
    with kit.remove_trapped_node():
        s = breed_run(fam, tmp_path / "run", 4, workers=2, backend="ray", ray_address=kit.address)
    check_breed(breed_record(tmp_path / "run", s), breed_seq["full"], kit)


def test_breed_resume_loses_a_node(kit, fam, breed_seq, tmp_path):
    kit.arm("none", 1)
    breed_run(fam, tmp_path / "run", 2, workers=2, backend="ray", ray_address=kit.address)
    kit.arm("search", 2)
    with kit.remove_trapped_node():
        s = breed_run(fam, tmp_path / "run", 4, workers=2, backend="ray", ray_address=kit.address)
    check_breed(breed_record(tmp_path / "run", s), breed_seq["resumed"], kit)
