"""A merge scores the same in memory as written to disk; each load builds its own module."""
from __future__ import annotations

import json

import pytest
import torch

import kinmerge
from kinmerge.evaluate import ExactMatch, InMemoryModel, Perplexity, evaluate_model, load_model
from kinmerge.evaluate.model import read_dir


def recipe(zoo):
    return {"merge_method": "task_arithmetic", "base_model": str(zoo / "base"), "dtype": "float32",
            "models": [{"model": str(zoo / "add"), "parameters": {"weight": 0.7}},
                       {"model": str(zoo / "rev"), "parameters": {"weight": 0.9}}]}


def test_merge_in_memory_scores_like_on_disk(tiny_zoo, tmp_path):
    m = json.loads((tiny_zoo / "zoo.json").read_text())
    evs = [Perplexity(tiny_zoo / m["text"]),
           ExactMatch(tiny_zoo / m["skills"]["add"]["heldout"], name="add", stop=None,
                      max_new_tokens=4)]
    on_disk = kinmerge.merge(recipe(tiny_zoo), tmp_path / "merged")
    a = evaluate_model(on_disk, evs)
    b = evaluate_model(kinmerge.merge_to_memory(recipe(tiny_zoo)), evs)
    assert a == b
    # and the merge is a different model from its parents (the check can fail)
    assert evaluate_model(tiny_zoo / "add", evs)["perplexity"] != pytest.approx(a["perplexity"])


def test_each_load_is_a_module_the_caller_owns(tiny_zoo):
    add, rev = read_dir(tiny_zoo / "add"), read_dir(tiny_zoo / "rev")
    first = load_model(add).module
    ppl = Perplexity(tiny_zoo / "tasks/text.txt")
    p_rev = ppl(rev)["perplexity"]
    assert load_model(add).module is not first  # nothing shared between two loads
    assert ppl(add)["perplexity"] != p_rev
    assert torch.equal(first.model.embed_tokens.weight, add.tensors["model.embed_tokens.weight"])
    assert ppl(InMemoryModel(rev.tensors, rev.config, rev.tokenizer_dir))["perplexity"] == p_rev


def test_not_a_model_is_a_clear_error():
    with pytest.raises(TypeError, match="cannot evaluate a int"):
        load_model(3)
