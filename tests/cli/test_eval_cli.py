"""`kinmerge eval`: models scored on --task files and on a zoo's skills."""
import json

import pytest
from click.testing import CliRunner

from kinmerge.cli import main
from kinmerge.cli.evaluate import parse_task
from kinmerge.zoo.synthetic import synthetic_llama
from kinmerge.zoo.tokenizer import char_tokenizer, save_tokenizer


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    vocab = len(char_tokenizer())
    m = synthetic_llama(root / "m", layers=1, hidden=16, intermediate=16, vocab=vocab)
    save_tokenizer(m)
    (root / "t.jsonl").write_text('{"prompt": "Rab=", "answer": "ba"}\n'
                                  '{"prompt": "Rcd=", "answer": "dc"}\n')
    zoo = root / "zoo"
    (zoo / "tasks").mkdir(parents=True)
    (zoo / "tasks" / "h.jsonl").write_text((root / "t.jsonl").read_text())
    # a whole manifest, as `kinmerge zoo build` writes it: eval reads it with read_manifest
    (zoo / "zoo.json").write_text(json.dumps(
        {"format": 2, "seed": 0, "digest": "d", "config": {}, "parents": ["rev", "rev"],
         "models": {"rev": {"path": "rev", "skill": "rev"}}, "text": "tasks/h.jsonl",
         "skills": {"rev": {"heldout": "tasks/h.jsonl", "search": "tasks/h.jsonl"}}}))
    return root


def test_parse_task():
    assert parse_task("add=a.jsonl") == ("exact_match", "add", "a.jsonl")
    assert parse_task("perplexity:p=x.txt") == ("perplexity", "p", "x.txt")


def test_eval_json_and_table(model):
    r = CliRunner().invoke(main, ["eval", str(model / "m"), "--json",
                                  "--task", f"em={model / 't.jsonl'}",
                                  "--task", f"perplexity:ppl={model / 't.jsonl'}"])
    assert r.exit_code == 0, r.output
    scores = json.loads(r.stdout)[str(model / "m")]
    assert scores["em"] == 0.0 and scores["ppl"] > 1.0  # random weights: wrong, perplexed
    r = CliRunner().invoke(main, ["eval", str(model / "m"), "--zoo", str(model / "zoo")])
    assert r.exit_code == 0 and "rev" in r.output and "0.0000" in r.output


@pytest.mark.parametrize("args,msg", [
    (["--task", "nonsense"], "not a task: 'nonsense'"),
    ([], "no task to score"),
    (["--zoo", "."], "is not a zoo (no zoo.json)"),
    (["--task", "bogus:x=t.jsonl"], "unknown evaluator 'bogus'"),
])
def test_eval_errors(model, args, msg):
    r = CliRunner().invoke(main, ["eval", str(model / "m"), *args])
    assert r.exit_code == 2 and msg in r.output


def test_eval_progress_bars_on_a_terminal_lines_off_one(model):
    args = ["eval", str(model / "m"), "--json", "--task", f"em={model / 't.jsonl'}",
            "--task", f"em2={model / 't.jsonl'}"]
    quiet = CliRunner().invoke(main, args)  # not a terminal: a line per finished model
    assert quiet.exit_code == 0, quiet.output
    line = quiet.stderr.strip()
    assert line.startswith(f"[1/1] {model / 'm'}: em=0.0000 em2=0.0000 mean=0.0000 (")
    assert line.endswith(" s)") and len(quiet.stderr.splitlines()) == 1
    assert json.loads(quiet.stdout)  # stdout stays pure JSON
    shown = CliRunner().invoke(main, [*args, "--progress"])
    assert shown.exit_code == 0, shown.output
    assert f"[1/1] {model / 'm'}" in shown.output
    off = CliRunner().invoke(main, [*args, "--no-progress"])
    assert "[1/1]" not in off.output and off.stderr == ""


def test_eval_table_shows_the_mean_over_tasks(model):
    r = CliRunner().invoke(main, ["eval", str(model / "m"), "--task", f"a={model / 't.jsonl'}",
                                  "--task", f"perplexity:p={model / 't.jsonl'}"],
                           env={"COLUMNS": "120"})
    assert r.exit_code == 0, r.output
    scores = json.loads(CliRunner().invoke(main, [
        "eval", str(model / "m"), "--json", "--task", f"a={model / 't.jsonl'}",
        "--task", f"perplexity:p={model / 't.jsonl'}"]).stdout)[str(model / "m")]
    mean = (scores["a"] + scores["p"]) / 2
    header = next(x for x in r.stdout.splitlines() if "model" in x)
    assert header.split("┃")[-2].strip() == "mean"
    assert mean > 0.5 and f"{mean:.4f}" in r.stdout  # perplexity > 1: the mean is not 0


def test_evaluate_model_logs_one_line_per_model(model, caplog):
    import logging

    from kinmerge.evaluate import ExactMatch, evaluate_model
    with caplog.at_level(logging.INFO, logger="kinmerge.evaluate"):
        evaluate_model(model / "m", [ExactMatch(model / "t.jsonl", name="em")])
    assert f"scored {model / 'm'}: em=0.0000" in caplog.text


def test_eval_zoo_reads_the_manifest_through_its_one_reader(model, tmp_path):
    """A zoo.json eval cannot use is refused as every command refuses it (read_manifest),
    and a skill without the split asked for is named."""
    manifest = json.loads((model / "zoo" / "zoo.json").read_text())
    (tmp_path / "tasks").mkdir()
    (tmp_path / "zoo.json").write_text(json.dumps({"skills": manifest["skills"]}))
    r = CliRunner().invoke(main, ["eval", str(model / "m"), "--zoo", str(tmp_path)])
    assert r.exit_code == 2 and "holds no readable zoo manifest ('format')" in r.output
    manifest["skills"]["rev"] = {"heldout": "tasks/h.jsonl"}
    (tmp_path / "zoo.json").write_text(json.dumps(manifest))
    r = CliRunner().invoke(main, ["eval", str(model / "m"), "--zoo", str(tmp_path),
                                  "--split", "search"])
    assert r.exit_code == 2 and "the zoo's manifest names no search task file for rev" in r.output
