"""Multi-stage recipes whose later stages take their tokenizer from an earlier stage.

`validate` and `plan` read an earlier stage's tokenizer as the stage will write it (its own
tokenizer settings over its inputs), so they accept exactly what `merge` runs and refuse what
it refuses, with the same error naming the stage; the planned shapes and vocabulary are the
merged ones. What a multi-stage merge writes names each stage by its name, never the
temporary folder it lived in, and its mergekit_config.yml runs the same merge again.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from safetensors import safe_open

import kinmerge
from kinmerge.cli import main
from kinmerge.core.merge import make_plans
from kinmerge.errors import KinmergeError
from kinmerge.zoo.synthetic import synthetic_llama
from kinmerge.zoo.tokenizer import VOCAB

TINY = dict(layers=2, hidden=8, intermediate=8, heads=2, kv_heads=1)  # as conftest's `added`
V = len(VOCAB)

E = "model.embed_tokens.weight"


@pytest.fixture(scope="module")
def bare(added):
    """A fine-tune of the base with no tokenizer files (its rows are the base's 71)."""
    return str(synthetic_llama(Path(added["root"]) / "bare", vocab=V, seed=7,
                               base=added["base"], delta=0.05, **TINY))


def union_stage(m, name="A", **extra) -> dict:
    """base + ft1 + ft2 by task arithmetic over their union: 75 tokens (see conftest)."""
    return {"name": name, "merge_method": "task_arithmetic", "base_model": m["base"],
            "dtype": "float32", "tokenizer_source": "union",
            "models": [{"model": m["ft1"], "parameters": {"weight": 0.6}},
                       {"model": m["ft2"], "parameters": {"weight": 0.4}}], **extra}


def linear(refs, **extra) -> dict:
    return {"merge_method": "linear", "dtype": "float32",
            "models": [{"model": r, "parameters": {"weight": 1.0}} for r in refs], **extra}


def plain(ref, name="A") -> dict:
    """A stage with no tokenizer settings: it writes its reference's tokenizer files."""
    return {"name": name, "merge_method": "passthrough", "dtype": "float32",
            "models": [{"model": ref}]}


def cases(m, bare) -> dict[str, tuple[list[dict], str | None]]:
    """name -> (documents, None if merge runs it, else what its error says)."""
    block_tokens = {"<tool>": {"source": "A"},
                    "<new>": {"source": {"kind": "model_token", "model": "A", "token": "<think>"}},
                    "<pad>": {"source": {"kind": "zero"}}}
    return {
        "source-is-a-stage": ([union_stage(m), linear(["A", m["ft1"]], tokenizer_source="A")],
                              None),
        "block-source-is-a-stage": ([union_stage(m), linear(["A", m["ft1"]],
                                                            tokenizer={"source": "A"})], None),
        "base-is-a-stage": ([union_stage(m), {
            "merge_method": "task_arithmetic", "base_model": "A", "tokenizer_source": "base",
            "dtype": "float32", "models": [{"model": m["ft2"], "parameters": {"weight": 0.5}}]}],
            None),
        "union-over-a-stage": ([union_stage(m), {
            "merge_method": "task_arithmetic", "base_model": m["base"], "dtype": "float32",
            "tokenizer_source": "union",
            "models": [{"model": "A", "parameters": {"weight": 0.5}},
                       {"model": m["ft1"], "parameters": {"weight": 0.5}}]}], None),
        "block-tokens-from-a-stage": ([plain(m["ft1"]), linear(
            ["A", m["ft2"]], tokenizer={"source": "union", "tokens": block_tokens,
                                        "pad_to_multiple_of": 8})], None),
        "stage-without-settings": ([plain(m["ft1"]), linear([m["base"], "A"],
                                                            tokenizer_source="A")], None),
        "chain-of-three": ([union_stage(m), {
            "name": "B", "merge_method": "task_arithmetic", "base_model": "A",
            "dtype": "float32", "tokenizer_source": "union",
            "models": [{"model": m["ft1"], "parameters": {"weight": 0.5}}]},
            linear(["B", m["ft2"]], tokenizer_source="B")], None),
        "named-target": ([union_stage(m), dict(linear(["A", m["ft2"]], tokenizer_source="A"),
                                               name="last")], None),
        "no-tokenizer-by-index": ([plain(bare), {
            "merge_method": "task_arithmetic", "base_model": "A", "tokenizer_source": "base",
            "dtype": "float32", "models": [{"model": m["ft1"], "parameters": {"weight": 0.5}}]}],
            None),
        "union-needs-a-stage-tokenizer": ([plain(bare), {
            "merge_method": "task_arithmetic", "base_model": "A", "tokenizer_source": "union",
            "dtype": "float32", "models": [{"model": m["ft1"], "parameters": {"weight": 0.5}}]}],
            "tokenizer source 'union' needs the models' tokenizers, and A has no tokenizer "
            "files"),
        "token-the-stage-lacks": ([plain(m["ft1"]), linear(
            ["A", m["ft2"]], tokenizer={"source": "A", "tokens": {"<code>": {"source": {
                "kind": "model_token", "model": "A", "token": "<code>"}}}})],
            "'<code>'"),
        "stage-source-not-in-recipe": ([union_stage(m), plain(m["ft1"], "B"),
                                        linear(["A", m["ft1"]], tokenizer_source="B")],
                                       "tokenizer_source 'B' is neither 'union', 'base' nor a "
                                       "model of the recipe"),
    }


def write(path: Path, docs: list[dict]) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def header(folder: Path) -> dict[str, list[int]]:
    with safe_open(folder / "model.safetensors", "pt") as f:
        return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}


CASES = ["source-is-a-stage", "block-source-is-a-stage", "base-is-a-stage",
         "union-over-a-stage", "block-tokens-from-a-stage", "stage-without-settings",
         "chain-of-three", "named-target", "no-tokenizer-by-index",
         "union-needs-a-stage-tokenizer", "token-the-stage-lacks", "stage-source-not-in-recipe"]


@pytest.mark.parametrize("case", CASES)
def test_validate_plan_and_merge_agree(added, bare, tmp_path, case):
    docs, refused = cases(added, bare)[case]
    f = write(tmp_path / "multi.yml", docs)
    inter, out = tmp_path / "stages", tmp_path / "out"
    try:
        plans = make_plans(f)
    except KinmergeError as e:
        planned = e
    else:
        planned = None
    try:
        kinmerge.merge(f, out, intermediate_dir=inter)
    except KinmergeError as e:
        merged = e
    else:
        merged = None
    validated = CliRunner().invoke(main, ["validate", str(f)])
    shown = CliRunner().invoke(main, ["plan", str(f), "--json"])
    if refused is not None:
        assert planned is not None and merged is not None, (planned, merged)
        assert str(planned) == str(merged) and refused in str(merged)
        assert validated.exit_code == shown.exit_code == 2
        assert refused in validated.output and refused in shown.output
        assert not out.exists()
        return
    assert planned is None and merged is None, (planned, merged)
    assert validated.exit_code == 0 and shown.exit_code == 0, validated.output + shown.output
    rows = [json.loads(line) for line in shown.output.splitlines()]
    for s, p, _ in plans:  # each stage's plan is what was written: shapes, config, vocabulary
        folder = out if s is plans[-1][0] else inter / s.name
        assert header(folder) == {j.name: list(j.shape) for j in p.jobs}
        assert {r["tensor"]: r["shape"] for r in rows if r["stage"] == s.name} == header(folder)
        config = json.loads((folder / "config.json").read_text())
        assert config == p.config
        if p.vocab is not None:  # rows matched by index exactly where no tokenizer is read
            assert p.vocab.by_index == (not (folder / "tokenizer.json").exists())
        if p.vocab is not None and not p.vocab.by_index:
            tok = json.loads((folder / "tokenizer.json").read_text())
            vocab = tok["model"]["vocab"] | {a["content"]: a["id"] for a in tok["added_tokens"]}
            assert vocab == p.vocab.out.tokens
            assert config["vocab_size"] == p.vocab.out.rows == header(folder)[E][0]


def test_the_planned_vocabularies(added, bare, tmp_path):
    """The numbers behind the agreement: a stage's union (75 tokens) is what the next reads."""
    got = {}
    for case in ("source-is-a-stage", "base-is-a-stage", "union-over-a-stage",
                 "block-tokens-from-a-stage", "stage-without-settings", "chain-of-three"):
        plans = make_plans(write(tmp_path / f"{case}.yml", cases(added, bare)[case][0]))
        got[case] = [(p.vocab.out.n_tokens, p.vocab.out.rows) if p.vocab else None
                     for _, p, _ in plans]
    assert got == {
        "source-is-a-stage": [(75, 75), (75, 75)],
        "base-is-a-stage": [(75, 75), (75, 75)],
        "union-over-a-stage": [(75, 75), (75, 75)],
        # ft1's 74 tokens, ft2's <code>, then <new> (<pad> is the base's): 76, padded to 80
        "block-tokens-from-a-stage": [None, (76, 80)],
        "stage-without-settings": [None, (74, 74)],
        "chain-of-three": [(75, 75), (75, 75), (75, 75)],
    }


RERUN = [("source-is-a-stage", None), ("block-tokens-from-a-stage", None),
         ("chain-of-three", None), ("named-target", None), ("chain-of-three", "B")]


@pytest.mark.parametrize("case, stage", RERUN)
def test_what_is_written_names_stages_and_runs_again(added, bare, tmp_path, case, stage):
    docs = cases(added, bare)[case][0]
    f = write(tmp_path / "multi.yml", docs)
    out = kinmerge.merge(f, tmp_path / "out", stage=stage)
    # no file names the temporary folder the earlier stages lived in
    leaks = [p.name for p in out.rglob("*") if p.is_file() and b"kinmerge-tmp" in p.read_bytes()]
    assert not leaks, leaks
    config = (out / "mergekit_config.yml").read_text()
    written = list(yaml.safe_load_all(config))
    names = [d.get("name") for d in written]
    want = [d.get("name") for d in docs]
    if case == "named-target":
        want = ["A", "last"]
    if stage == "B":  # the target and what it needs, the target last
        want = ["A", "B"]
    assert names == want  # every stage it needs, under the name the user gave it
    lineage = json.loads((out / "lineage.json").read_text())
    stage_records = {r["name"]: r["ref"] for r in lineage["ancestors"].values() if r.get("recipe")}
    assert stage_records == {n: n for n in want[:-1]}  # recorded by name, not temp folder
    card = (out / "README.md").read_text()
    assert "(a stage of the recipe below)" in card and config.rstrip() in card
    # read back, it is the same merge, byte for byte, and writes the same config again
    again = kinmerge.merge(out / "mergekit_config.yml", tmp_path / "again")
    for name in ("model.safetensors", "config.json", "tokenizer.json", "mergekit_config.yml"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_no_copy_tokenizer_leaves_the_stages_tokenizers(added, bare, tmp_path):
    """--no-copy-tokenizer is about OUT: the stages keep theirs, which later stages read
    (`tokenizer_source: base` over a stage matches tokens, not indices, either way)."""
    f = write(tmp_path / "multi.yml", cases(added, bare)["base-is-a-stage"][0])
    with_tok = kinmerge.merge(f, tmp_path / "with")
    without = kinmerge.merge(f, tmp_path / "without", copy_tokenizer=False,
                             intermediate_dir=tmp_path / "stages")
    assert (tmp_path / "stages" / "A" / "tokenizer.json").is_file()
    assert not (without / "tokenizer.json").exists() and (with_tok / "tokenizer.json").is_file()
    assert (without / "model.safetensors").read_bytes() == \
        (with_tok / "model.safetensors").read_bytes()
