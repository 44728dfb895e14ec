"""DFS: genome -> layer path, the path model, its export and loader, and a short run."""
from __future__ import annotations

import json
import random

import pytest
import torch
from transformers import AutoModelForCausalLM

from kinmerge.search.evolve import DfsSpace, evolve, load_dfs_model
from kinmerge.search.evolve.candidate import build_candidate
from kinmerge.search.evolve.config import DfsSpec
from kinmerge.search.evolve.dfs import Step

TOKENS = torch.arange(1, 13).unsqueeze(0)


@pytest.fixture
def space(evofam):
    return DfsSpace(str(evofam / "ft1"), 3, str(evofam / "other"), 2, DfsSpec(repeats=3))


def test_layout(space):
    assert space.m == 5 and len(space.slots) == 15 and space.n_scales == 25
    assert space.slots[3] == Step(1, 0) and space.slots[5] == Step(0, 0)
    assert space.names[0] == "slot000" and space.names[15] == "w00_00"


def test_x0_is_a_own_path_with_unit_scales(space):
    path, scales = space.decode(space.x0())
    assert path == [Step(0, 0), Step(0, 1), Step(0, 2)] and scales == [1.0, 1.0, 1.0]


def test_path_starts_and_ends_with_a(space):
    rng = random.Random(0)
    for _ in range(50):
        path, scales = space.decode([rng.random() for _ in range(space.dim)])
        assert path[0] == Step(0, 0) and path[-1] == Step(0, 2)
        assert len(scales) == len(path) and scales[0] == 1.0
        assert all(0.5 <= s <= 1.5 for s in scales)


def test_scale_is_the_transition_entry(space):
    g = [0.0] * space.dim
    for t in (0, 3, 7):  # A0, B0, A2 (second repetition)
        g[t] = 1.0
    g[15 + 0 * 5 + 3] = 1.0  # W[A0 -> B0] = 1.5
    g[15 + 3 * 5 + 2] = 0.0  # W[B0 -> A2] = 0.5
    path, scales = space.decode(g)
    assert path == [Step(0, 0), Step(1, 0), Step(0, 2)] and scales == [1.0, 1.5, 0.5]
    r = space.recipe(path)
    assert [s.sources[0].layer_range for s in r.slices] == [(0, 1), (0, 1), (2, 3)]


def test_identity_path_reproduces_a_exactly(space, evofam):
    path, scales = space.decode(space.x0())
    cand = build_candidate(space.recipe(path), scales=scales)
    assert [s.sources[0].layer_range for s in space.recipe(path).slices] == [(0, 3)]
    a = AutoModelForCausalLM.from_pretrained(str(evofam / "ft1")).eval()
    with torch.no_grad():
        assert torch.equal(cand.model(TOKENS).logits, a(TOKENS).logits)


def test_export_loads_with_its_scales(space, tmp_path):
    import kinmerge
    from kinmerge.search.evolve.dfs import write_dfs_config

    path = [Step(0, 0), Step(1, 1), Step(0, 1), Step(0, 1), Step(0, 2)]
    scales = [1.0, 0.7, 1.3, 1.1, 0.9]
    cand = build_candidate(space.recipe(path), scales=scales)
    out = kinmerge.merge(space.recipe(path), tmp_path / "m")
    write_dfs_config(out, space.describe(path), scales)
    loaded = load_dfs_model(out)
    plain = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    with torch.no_grad():
        want = cand.model(TOKENS).logits
        assert torch.equal(loaded(TOKENS).logits, want)
        assert not torch.allclose(plain(TOKENS).logits, want)  # the scales matter
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 5 and cfg["kinmerge_dfs"]["scales"] == scales


def test_dfs_run_exports_the_evaluated_model(evofam, tmp_path):
    cfg = {"mode": "dfs", "models": [str(evofam / "ft1"), str(evofam / "other")],
           "template": {"dtype": "float32"}, "dfs": {"repeats": 2},
           "fitness": {"function": "evo_fitness:logit_norm"}, "budget": {"trials": 8}}
    res = evolve(cfg, tmp_path / "run")
    s = res.summary.to_dict()
    assert s["mode"] == "dfs" and s["trials"] == 8
    assert s["best_heldout"] == pytest.approx(s["best_search"], abs=0)
    assert s["best_model_matches"] and s["best_model_heldout"] == s["best_heldout"]
    model = load_dfs_model(tmp_path / "run" / "best-model")
    with torch.no_grad():
        got = float(torch.sigmoid(model(torch.arange(8).unsqueeze(0)).logits.std()))
    assert got == s["best_search"]


def test_ps_then_dfs(ps_config, evofam, tmp_path):
    cfg = ps_config(mode="ps+dfs", budget={"trials": 4}, dfs_partner=str(evofam / "other"),
                    fitness={"function": "evo_fitness:logit_norm"},
                    dfs={"repeats": 1, "scales": "none"})
    res = evolve(cfg, tmp_path / "run")
    assert [p.name for p in res.phases] == ["ps", "dfs"]
    assert (tmp_path / "run" / "ps-best-model" / "config.json").exists()
    assert str(tmp_path / "run" / "ps-best-model") in res.best_recipe.read_text()
    assert res.summary.trials == 8
