"""Greedy soup on a synthetic family: the noisy ingredient is left out, the soup is the
uniform average of the rest, and it beats the uniform soup and the best ingredient."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file

from kinmerge import lineage
from kinmerge.search.soup import soup
from kinmerge.zoo.synthetic import synthetic_llama

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    root = tmp_path_factory.mktemp("soupfam")
    kw = dict(layers=2, hidden=16, intermediate=24, vocab=40)
    base = synthetic_llama(root / "base", seed=0, **kw)
    good = [str(synthetic_llama(root / f"ft{i}", base=base, seed=i, delta=0.05, **kw))
            for i in (1, 2, 3)]
    noisy = str(synthetic_llama(root / "noisy", base=base, seed=9, delta=0.5, **kw))
    return {"base": str(base), "good": good, "noisy": noisy}


@pytest.fixture
def env(family, monkeypatch):
    monkeypatch.setenv("SOUP_TEST_BASE", family["base"])
    monkeypatch.setenv("SOUP_TEST_GOOD", os.pathsep.join(family["good"]))
    monkeypatch.syspath_prepend(str(HERE))


def config(family) -> dict:
    return {"ingredients": [family["noisy"], *family["good"]],
            "fitness": {"function": "soup_standins:closeness"}}


def test_greedy_soup_keeps_what_helps(family, env, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="kinmerge.search.soup"):
        r = soup(config(family), tmp_path / "s")
    # a line per scored model or soup, as it finishes (each scored once): the 4 ingredients
    # on both splits, the 3 soups tried, then the held-out scores of greedy and uniform
    scored = [m.split(":")[0] for m in caplog.messages if m.startswith("scored ")]
    assert scored == [*(f"scored {n} ({split})" for n in ("noisy", "ft1", "ft2", "ft3")
                        for split in ("search", "heldout")),
                      "scored soup of 2 (search)", "scored soup of 3 (search)",
                      "scored soup of 4 (search)", "scored soup of 3 (heldout)",
                      "scored soup of 4 (heldout)"]
    assert [s.members[0] for s in r.ranking][-1] == family["noisy"]  # ranked last
    assert set(r.greedy.members) == set(family["good"])
    assert [st.accepted for st in r.steps] == [True, True, False]
    assert r.greedy.search == pytest.approx(1.0, abs=1e-4)  # the mean of the good deltas (float32)
    assert r.greedy.search > r.best_ingredient.search and r.greedy.search > r.uniform.search
    assert r.greedy.heldout == pytest.approx(r.greedy.search / 2)
    assert r.uniform.members == tuple(config(family)["ingredients"])
    # the soup is an ordinary linear recipe, merged with its lineage
    rec = yaml.safe_load((tmp_path / "s" / "soup.yml").read_text())
    assert rec["merge_method"] == "linear"
    assert [m["model"] for m in rec["models"]] == list(r.greedy.members)
    assert {m["parameters"]["weight"] for m in rec["models"]} == {1.0}
    lin = lineage.read(tmp_path / "s" / "soup").model
    assert len(lin.parents) == 3 and lin.scores["fitness"] == pytest.approx(r.greedy.search)
    w = load_file(str(tmp_path / "s" / "soup" / "model.safetensors"))
    parts = [load_file(str(Path(m) / "model.safetensors")) for m in r.greedy.members]
    k = "model.layers.0.mlp.up_proj.weight"
    assert (w[k] - sum(p[k] for p in parts) / 3).abs().max() < 1e-6
    saved = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert saved == json.loads(json.dumps(r.to_dict()))


def test_soup_command(family, env, tmp_path):
    from kinmerge.cli import main

    (tmp_path / "soup.yml").write_text(yaml.safe_dump(config(family)))
    res = CliRunner().invoke(main, ["soup", str(tmp_path / "soup.yml"), "--out",
                                    str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "greedy soup" in res.output and "3 of 4 ingredients" in res.output


def test_soup_command_takes_threads_and_refuses_a_bad_count(family, tmp_path):
    """--threads, as evolve and breed take it: a bad count fails before OUT is made."""
    from kinmerge.cli import main

    (tmp_path / "soup.yml").write_text(yaml.safe_dump(config(family)))
    res = CliRunner().invoke(main, ["soup", str(tmp_path / "soup.yml"), "--out",
                                    str(tmp_path / "o"), "--threads", "0"])
    assert res.exit_code == 2 and "not a thread count: 0" in res.output, res.output
    assert not (tmp_path / "o").exists()


def test_soup_config_problems(tmp_path):
    from kinmerge.errors import KinmergeError

    with pytest.raises(KinmergeError, match="a soup needs at least two ingredients"):
        soup({"ingredients": ["a"], "fitness": {"function": "m:f"}}, tmp_path / "x")


def test_the_zoo_example_parses():
    from kinmerge.search.soup import load_soup_config

    cfg = load_soup_config(Path(__file__).parents[2] / "examples" / "soup-zoo.yml")
    assert len(cfg.ingredients) == 4 and all(t.heldout for t in cfg.fitness.tasks)


def test_soup_refuses_to_write_into_an_ingredient(family, env):
    from kinmerge.errors import KinmergeError

    with pytest.raises(KinmergeError, match="input model"):
        soup(config(family), Path(family["good"][0]) / "soup")


def test_soup_threads_reach_every_scoring(family, env, tmp_path):
    """The thread count is an argument: every ingredient and soup is scored with it, and
    torch's own count is back afterwards; a bad count fails before OUT exists."""
    import torch

    from kinmerge.errors import KinmergeError
    from kinmerge.evaluate.fitness import as_fitness
    from soup_standins import closeness

    seen: list[int] = []

    def counting(candidate, split):
        seen.append(torch.get_num_threads())
        return closeness(candidate, split)

    before = torch.get_num_threads()
    r = soup(config(family), tmp_path / "s", fitness=as_fitness(counting), threads=2)
    assert seen and set(seen) == {2} and torch.get_num_threads() == before
    assert set(r.greedy.members) == set(family["good"])
    with pytest.raises(KinmergeError, match="not a thread count"):
        soup(config(family), tmp_path / "bad", threads=0)
    assert not (tmp_path / "bad").exists()
