"""examples/evolve-zoo.yml, wired end to end on a tiny zoo (seconds to train; scores ~0)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kinmerge.evolve import evolve, load_evolve_config
from kinmerge.evolve.scoring import _examples, _tokenizer, exact_match

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


def test_exact_match_counts_whole_answers(tiny_zoo):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_zoo / "add")).eval()
    tok = _tokenizer(str(tiny_zoo / "add"))
    ex = _examples(str(tiny_zoo / "tasks/add/search.jsonl"), 8)
    assert len(ex) == 8 and 0.0 <= exact_match(model, tok, ex) <= 1.0

    class Parrot(type(model)):  # answers every prompt with the first example's answer
        def generate(self, input_ids, **kw):
            import torch
            ans = tok(ex[0][1] + tok.eos_token, add_special_tokens=False).input_ids
            tail = torch.tensor(ans).expand(input_ids.shape[0], -1)
            return torch.cat([input_ids, tail], dim=1)

    model.__class__ = Parrot
    assert exact_match(model, tok, ex) == pytest.approx(1 / 8)


def test_zoo_example_runs(tiny_zoo, tmp_path):
    cfg = on_tiny("evolve-zoo.yml", tiny_zoo, budget={"trials": 3},
                  baselines={"weights": [1.0], "densities": [0.5]})
    s = evolve(cfg, tmp_path / "run").summary
    assert s["mode"] == "ps" and s["trials"] == 3
    assert set(s["baselines_heldout"]) == {"task_arithmetic-w1", "ties-w1-d0.5",
                                           "dare_ties-w1-d0.5"}
    assert set(s["best_heldout_scores"]) == {"add", "rev", "sort"}
