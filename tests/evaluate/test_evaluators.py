"""Evaluators on models whose answers are known by hand."""
from __future__ import annotations

import json
import math

import pytest

from kinmerge import evaluate
from kinmerge.errors import KinmergeError
from kinmerge.evaluate import ExactMatch, MultipleChoice, Perplexity
from kinmerge.zoo.tokenizer import VOCAB


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_exact_match_counts_right_answers(sevens, tmp_path):
    # the model continues every prompt with 777...; 3 new tokens give "777"
    f = write_rows(tmp_path / "em.jsonl", [{"prompt": "A1=", "answer": "777"},
                                            {"prompt": "Rab=", "answer": "77"},
                                            {"prompt": "C=", "answer": " 777 "},
                                            {"prompt": "S9=", "answer": "778"}])
    em = ExactMatch(f, name="t", max_new_tokens=3, batch_size=3)
    assert em.generate(sevens) == ["777"] * 4
    assert em(sevens) == {"t": 0.5}  # answers are compared stripped


def test_exact_match_default_length_and_stop_string(sevens, tmp_path):
    f = write_rows(tmp_path / "em.jsonl", [{"prompt": "A=", "answer": "77"}])
    # default max_new_tokens: longest answer + 1 -> "777", which is not "77"
    assert ExactMatch(f)(sevens) == {"exact_match": 0.0}
    # a stop string cuts the continuation at its first occurrence
    assert ExactMatch(f, stop="7").generate(sevens) == [""]


def test_exact_match_batching_does_not_change_answers(random_llama, tmp_path):
    # prompts of different lengths: left padding must not change any greedy answer
    rows = [{"prompt": p, "answer": "x"} for p in
            ["A12+34=", "Rabcdefgh=", "S1=", "Cab=", "A99+01=", "Rqwertyuiop=", "S123="]]
    f = write_rows(tmp_path / "em.jsonl", rows)
    one = ExactMatch(f, max_new_tokens=5, stop=None, batch_size=1).generate(random_llama)
    seven = ExactMatch(f, max_new_tokens=5, stop=None, batch_size=7).generate(random_llama)
    assert one == seven
    assert len(set(one)) > 1  # the outputs depend on the prompt, so the check means something


def test_multiple_choice_picks_the_likeliest(sevens, tmp_path):
    f = write_rows(tmp_path / "mc.jsonl", [
        {"prompt": "A=", "choices": ["12", "77", "7a"], "answer": 1},   # 77 is likeliest: right
        {"prompt": "A=", "choices": ["7", "8"], "answer": "8"},         # 7 is picked: wrong
        {"prompt": "A=", "choices": ["88", "7"], "answer": 1}])         # shorter 7 beats 88
    assert MultipleChoice(f, name="mc", batch_size=2)(sevens) == {"mc": pytest.approx(2 / 3)}


def test_perplexity_by_hand(sevens, tmp_path):
    f = tmp_path / "text.txt"
    f.write_text("77\n\n7a\n")
    p7 = 3 / (3 + len(VOCAB) - 1)
    p_other = 1 / (3 + len(VOCAB) - 1)
    want = math.exp(-(3 * math.log(p7) + math.log(p_other)) / 4)
    got = Perplexity(f)(sevens)["perplexity"]
    assert got == pytest.approx(want, rel=1e-5)


def test_registry_and_scorer(sevens, tmp_path):
    f = write_rows(tmp_path / "em.jsonl", [{"prompt": "A=", "answer": "77"}])
    score = evaluate.model_dir_scorer("exact_match", f, max_new_tokens=2)
    assert score(sevens) == 1.0
    with pytest.raises(KinmergeError, match="unknown evaluator 'bleu'"):
        evaluate.make_evaluator("bleu", f)
    with pytest.raises(KinmergeError, match="bad options for evaluator 'exact_match'"):
        evaluate.make_evaluator("exact_match", f, temperature=0.7)


def test_bad_files_are_reported_with_their_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"prompt": "a", "answer": "b"}\n{"prompt": "a"}\n')
    with pytest.raises(KinmergeError, match="line 2 lacks answer") as e:
        ExactMatch(f)
    assert f"{f}:2" in e.value.message
    with pytest.raises(KinmergeError, match="task file .* not found"):
        ExactMatch(tmp_path / "missing.jsonl")
    mc = write_rows(tmp_path / "mc.jsonl", [{"prompt": "a", "choices": ["x"], "answer": "y"}])
    with pytest.raises(KinmergeError, match="answer 'y' is not one of the choices"):
        MultipleChoice(mc)


def test_perplexity_of_answers_given_prompts(sevens, tmp_path):
    f = write_rows(tmp_path / "qa.jsonl", [{"prompt": "A1=", "answer": "77"},
                                            {"prompt": "Rxyz=", "answer": "a"}])
    p7 = 3 / (3 + len(VOCAB) - 1)
    p_other = 1 / (3 + len(VOCAB) - 1)
    want = math.exp(-(2 * math.log(p7) + math.log(p_other)) / 3)  # prompts are not scored
    assert Perplexity(f, name="ppl")(sevens)["ppl"] == pytest.approx(want, rel=1e-5)
