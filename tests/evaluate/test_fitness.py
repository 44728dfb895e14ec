"""The seams under evolve, breed and soup: build (device, dtype, ties, ownership), the one
fitness interface and its user-function forms, evaluate_model(device=), and torch's global
state left as it was by the public calls."""
from __future__ import annotations

import json
import warnings

import pytest
import torch

import kinmerge
from kinmerge.errors import KinmergeError
from kinmerge.evaluate import (Candidate, ExactMatch, Perplexity, build, evaluate_model,
                               read_dir)
from kinmerge.evaluate.fitness import FunctionFitness, TaskFitness, as_fitness
from kinmerge.evaluate.tasks import FitnessSpec
from kinmerge.zoo.synthetic import synthetic_llama


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from kinmerge.zoo.tokenizer import VOCAB, save_tokenizer

    root = tmp_path_factory.mktemp("tiny")
    out = synthetic_llama(root / "m", layers=2, hidden=16, intermediate=24, vocab=len(VOCAB),
                          seed=3)
    save_tokenizer(out)
    return out


def test_build_takes_the_weights_dtype_unless_told(tiny):
    w = read_dir(tiny)
    assert next(build(w.tensors, w.config).parameters()).dtype == torch.float32
    half = {k: v.to(torch.bfloat16) for k, v in w.tensors.items()}
    assert next(build(half, w.config).parameters()).dtype == torch.bfloat16
    m = build(w.tensors, w.config, "cpu", torch.float16)
    assert {p.dtype for p in m.parameters()} == {torch.float16}


def test_build_returns_a_fresh_module_holding_the_weights(tiny):
    w = read_dir(tiny)
    a, b = build(w.tensors, w.config), build(w.tensors, w.config)
    assert a is not b and not a.training
    a.model.layers[0].register_forward_pre_hook(lambda m, x: (x[0] * 0,))
    ids = torch.arange(6)[None]
    with torch.no_grad():
        assert not torch.equal(a(ids).logits, b(ids).logits)  # a hook on one is not on the other
    assert a.model.embed_tokens.weight.data_ptr() == w.tensors[
        "model.embed_tokens.weight"].data_ptr()  # assigned, not copied


def test_build_ties_a_missing_head_and_refuses_strangers(tiny):
    w = read_dir(tiny)
    cfg = {**w.config, "tie_word_embeddings": True}
    tensors = {k: v for k, v in w.tensors.items() if k != "lm_head.weight"}
    m = build(tensors, cfg)
    assert m.lm_head.weight is m.model.embed_tokens.weight
    with pytest.raises(KinmergeError, match=r"lack tensors of the model: \['lm_head.weight'\]"):
        build(tensors, w.config)
    with pytest.raises(KinmergeError, match=r"tensors the model does not have: \['extra'\]"):
        build({**w.tensors, "extra": torch.zeros(1)}, w.config)


def test_candidate_builds_on_the_asked_device_and_dtype(tiny):
    c = Candidate.from_dir(tiny, dtype=torch.bfloat16)
    assert c._module is None  # nothing built until asked
    assert next(c.model.parameters()).dtype == torch.bfloat16 and c.model is c.model
    assert c.load_seconds > 0 and c.loaded().device == "cpu"
    c.release()
    assert c._module is None


def test_evaluate_model_uses_the_device_it_is_given(tiny, tmp_path):
    (tmp_path / "t.txt").write_text("abc\n")
    a, b = Perplexity(tmp_path / "t.txt"), Perplexity(tmp_path / "t.txt", name="p2")
    b.device = "meta"
    with pytest.raises(KinmergeError, match=r"the evaluators ask for different devices: "
                                            r"\['cpu', 'meta'\]"):
        evaluate_model(tiny, [a, b])
    got = evaluate_model(tiny, [a, b], device="cpu")  # one device for all: no conflict
    assert got["perplexity"] == got["p2"] == a(tiny)["perplexity"]


def score_folder(model_dir):
    return float(len(str(model_dir)))


def score_candidate(candidate, split):
    return {"n": float(len(candidate.tensors)), "split_is_search": float(split == "search")}


def test_one_signature_for_user_functions_and_the_old_form_warns(tiny):
    cand = Candidate.from_dir(tiny)
    new = as_fitness(score_candidate)
    assert new.scores(cand, "search") == {"n": float(len(read_dir(tiny).tensors)),
                                          "split_is_search": 1.0}
    with pytest.warns(DeprecationWarning, match=r"now take \(candidate, split\)"):
        old = FunctionFitness(score_folder)
    assert old.scores(cand, "search") == {"function": float(len(str(tiny)))}
    merged = Candidate.from_merge(kinmerge.merge_to_memory(
        {"merge_method": "linear", "models": [{"model": str(tiny), "parameters": {"weight": 1}}]}))
    with pytest.raises(TypeError, match="a merge in memory has no model_dir"):
        old.scores(merged, "search")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new form never warns
        as_fitness(lambda c, split="search": 1.0)


def test_task_fitness_weights_and_the_configured_function(tiny, tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"prompt": "1+1=", "answer": "2"}) + "\n")
    spec = FitnessSpec(tasks=[{"name": "em", "search": str(tmp_path / "a.jsonl"),
                               "weight": 3.0, "options": {"max_new_tokens": 2}}],
                       function="test_fitness:score_candidate")
    f = TaskFitness(spec)
    s = f.scores(Candidate.from_dir(tiny), "search")
    em = ExactMatch(tmp_path / "a.jsonl", name="em", max_new_tokens=2)(tiny)["em"]
    assert s["em"] == em and s["split_is_search"] == 1.0
    assert f.combine(s) == pytest.approx((3 * em + s["n"] + 1.0) / 5)


def test_public_calls_leave_torch_global_state_alone(tmp_path):
    from kinmerge.zoo import ZooConfig, build_zoo
    from kinmerge.zoo.train import isolated_torch

    torch.manual_seed(1234)
    rng, threads = torch.random.get_rng_state(), torch.get_num_threads()
    with isolated_torch():
        torch.manual_seed(0)
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert not torch.are_deterministic_algorithms_enabled()
    build_zoo(tmp_path / "zoo", ZooConfig.tiny())
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads


def test_an_evaluator_is_a_fitness_without_warning(tiny, tmp_path):
    from kinmerge.evaluate.fitness import EvaluatorFitness

    (tmp_path / "t.txt").write_text("abc\n")
    ppl = Perplexity(tmp_path / "t.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = as_fitness(ppl)
    assert isinstance(f, EvaluatorFitness)
    assert f.scores(Candidate.from_dir(tiny), "search") == ppl(tiny)
