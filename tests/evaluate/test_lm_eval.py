"""The lm-eval adapter on local task YAMLs over local JSONL files (offline); skipped without
the `lm-eval` extra."""
from __future__ import annotations

import json

import pytest

from kinmerge.evaluate import ExactMatch, MultipleChoice
from kinmerge.evaluate.lm_eval import LmEval, write_local_task

pytest.importorskip("lm_eval")
pytest.importorskip("accelerate")  # lm-eval's HF model class needs it (the [hf] extra)


@pytest.fixture(autouse=True)
def offline_datasets(tmp_path, monkeypatch):
    # the datasets library caches under HF_HOME: keep it out of the home directory
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def test_lm_eval_agrees_with_builtin_evaluators(sevens, tmp_path):
    em = tmp_path / "em.jsonl"
    em.write_text("".join(json.dumps(r) + "\n" for r in [
        {"prompt": "A1=", "answer": "777"}, {"prompt": "Rab=", "answer": "77"},
        {"prompt": "S9=", "answer": "777"}, {"prompt": "C=", "answer": "778"}]))
    mc = tmp_path / "mc.jsonl"
    mc.write_text("".join(json.dumps(r) + "\n" for r in [
        {"prompt": "A=", "choices": ["12", "77", "7a"], "answer": 1},
        {"prompt": "A=", "choices": ["7", "8"], "answer": 1},
        {"prompt": "A=", "choices": ["88", "7"], "answer": 1}]))
    tasks = tmp_path / "tasks"
    write_local_task(tasks, "sevens_em", em, max_gen_toks=3)
    write_local_task(tasks, "sevens_mc", mc, kind="multiple_choice")
    scores = LmEval(["sevens_em", "sevens_mc"], include_path=tasks)(sevens)
    assert scores["sevens_em/exact_match"] == 0.5
    assert scores["sevens_em/exact_match"] == ExactMatch(em, max_new_tokens=3)(sevens)["exact_match"]
    assert scores["sevens_mc/acc"] == pytest.approx(2 / 3)
    assert set(scores) == {"sevens_em/exact_match", "sevens_mc/acc"}
    assert scores["sevens_mc/acc"] == pytest.approx(MultipleChoice(mc)(sevens)["multiple_choice"])


def test_lm_eval_on_zoo_task_in_memory(tiny_zoo, tmp_path):
    from kinmerge.evaluate import read_dir
    manifest = json.loads((tiny_zoo / "zoo.json").read_text())
    path = tiny_zoo / manifest["skills"]["add"]["choices"]
    write_local_task(tmp_path / "tasks", "zoo_add_mc", path, kind="multiple_choice")
    ev = LmEval(["zoo_add_mc"], include_path=tmp_path / "tasks", limit=8)
    on_disk = ev(tiny_zoo / "add")
    in_memory = ev(read_dir(tiny_zoo / "add"))
    assert on_disk == in_memory
    assert on_disk["zoo_add_mc/acc"] == MultipleChoice(path, max_examples=8)(tiny_zoo / "add")["multiple_choice"]
