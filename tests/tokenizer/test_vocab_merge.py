"""tokenizer_source union / base / <model> and the tokenizer: block, by hand-computed rows."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import kinmerge
from kinmerge.io.reader import ModelReader

E, H = "model.embed_tokens.weight", "lm_head.weight"


def ta(added, **extra):
    return {"merge_method": "task_arithmetic", "base_model": added["base"], "dtype": "float32",
            "models": [{"model": added["ft1"], "parameters": {"weight": 0.6}},
                       {"model": added["ft2"], "parameters": {"weight": 0.4}}], **extra}


def rows(path, name=E):
    return ModelReader(path).get(name)


def test_union_vocabulary_and_rows(added, tmp_path):
    out = kinmerge.merge(ta(added, tokenizer_source="union"), tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(str(out))
    vocab = tok.get_vocab()
    # the base's 71 tokens keep their ids; new ones follow, ft1's then ft2's, once each
    assert [vocab[t] for t in ("<tool>", "<think>", "<|im_end|>", "<code>")] == [71, 72, 73, 74]
    assert tok.convert_ids_to_tokens(tok("a<code>")["input_ids"]) == ["<s>", "a", "<code>"]
    assert tok.added_tokens_decoder[73].special and not tok.added_tokens_decoder[71].special
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 75
    b, f1, f2, got = rows(added["base"]), rows(added["ft1"]), rows(added["ft2"]), rows(out)
    assert got.shape == (75, 8)
    # tokens every model has: plain task arithmetic
    torch.testing.assert_close(got[:71], b + 0.6 * (f1[:71] - b) + 0.4 * (f2[:71] - b))
    # a token only one model has: that model's row (every input takes it, deltas are 0)
    assert torch.equal(got[71], f1[71]) and torch.equal(got[74], f2[72])
    # <think>: ft1 and ft2 have it, the base lacks it -> the base takes their mean
    mean = (f1[72] + f2[71]) / 2
    torch.testing.assert_close(got[72], mean + 0.6 * (f1[72] - mean) + 0.4 * (f2[71] - mean))
    model = AutoModelForCausalLM.from_pretrained(str(out))
    logits = model(torch.tensor([tok("a<tool>b")["input_ids"]])).logits
    assert logits.shape == (1, 4, 75) and torch.isfinite(logits).all()


def test_source_model_takes_its_vocabulary(added, tmp_path):
    out = kinmerge.merge(ta(added, tokenizer_source=added["ft2"]), tmp_path / "m")
    vocab = AutoTokenizer.from_pretrained(str(out)).get_vocab()
    assert len(vocab) == 73 and vocab["<code>"] == 72 and "<tool>" not in vocab
    got, f2 = rows(out, H), rows(added["ft2"], H)
    assert got.shape == (73, 8) and torch.equal(got[72], f2[72])


def test_base_source_matches_tokens_not_indices(added, tmp_path):
    out = kinmerge.merge(ta(added, tokenizer_source="base"), tmp_path / "m")
    b, f1, f2, got = rows(added["base"]), rows(added["ft1"]), rows(added["ft2"]), rows(out)
    assert got.shape == (71, 8)
    torch.testing.assert_close(got, b + 0.6 * (f1[:71] - b) + 0.4 * (f2[:71] - b))
    assert (out / "tokenizer.json").read_text() == (
        ModelReader(added["base"]).path / "tokenizer.json").read_text()


def test_tokenizer_block_tokens_force_zero_and_padding(added, tmp_path):
    block = {"source": "union", "pad_to_multiple_of": 16, "tokens": {
        "<think>": {"source": added["ft2"], "force": True},
        "<pad>": {"source": {"kind": "zero"}, "force": True},
        "<new>": {"source": {"kind": "model_token", "model": added["ft1"], "token": "<tool>"}}}}
    out = kinmerge.merge(ta(added, tokenizer=block), tmp_path / "m")
    vocab = AutoTokenizer.from_pretrained(str(out)).get_vocab()
    assert vocab["<new>"] == 75 and len(vocab) == 76
    f1, f2, got = rows(added["ft1"]), rows(added["ft2"]), rows(out)
    assert got.shape == (80, 8)  # 76 rounded up to 16
    assert torch.equal(got[vocab["<think>"]], f2[71])  # forced: every input takes ft2's row
    assert torch.equal(got[0], torch.zeros(8))
    assert torch.equal(got[75], f1[71])  # a new token, from ft1's <tool>
    # padding rows: every input's mean row, merged like any row
    b = rows(added["base"])
    assert torch.allclose(got[76:], got[:76].mean(0).expand(4, 8), atol=1e-6)
    assert not torch.equal(got[76], b[:8].mean(0))


@pytest.mark.parametrize("change, message", [
    ({"tokenizer_source": "union", "tokenizer": {"source": "base"}},
     "give either `tokenizer_source` or a `tokenizer:` block, not both"),
    ({"tokenizer_source": "nowhere"},
     "tokenizer_source 'nowhere' is neither 'union', 'base' nor a model of the recipe"),
    ({"tokenizer": {"tokens": {"<x>": {"source": "elsewhere"}}}},
     "tokenizer.tokens['<x>'].source: 'elsewhere' is not a model of the recipe"),
    ({"tokenizer": {"tokens": {"<x>": {"force": True}}}},
     "tokenizer.tokens['<x>']: `force` needs a `source`"),
    ({"tokenizer": {"pad_to_multiple_of": 0}},
     "tokenizer.pad_to_multiple_of must be a whole number in [1, 65536], got 0"),
])
def test_recipe_errors(added, change, message):
    with pytest.raises(kinmerge.KinmergeError) as e:
        kinmerge.load_recipe(ta(added, **change))
    assert message in str(e.value)


def test_missing_model_token_is_a_plan_error(added):
    block = {"tokens": {"<x>": {"source": {"kind": "model_token", "model": added["ft2"],
                                           "token": "<tool>"}}}}
    with pytest.raises(kinmerge.KinmergeError) as e:
        kinmerge.make_plan(ta(added, tokenizer=block))
    assert (f"model.embed_tokens.weight: token '<x>': '<tool>' is not in the vocabulary of "
            f"{added['ft2']}") in str(e.value)


def test_model_without_tokenizer_shares_the_base_vocabulary(added, tmp_path, caplog):
    import shutil
    bare = tmp_path / "bare"
    shutil.copytree(added["ft2"], bare)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (bare / f).unlink()
    r = ta(added, tokenizer_source="union")
    r["models"][1]["model"] = str(bare)
    with caplog.at_level("WARNING"):
        p = kinmerge.make_plan(r)
    assert f"model {bare} has no tokenizer files" in caplog.text
    assert p.vocab.out.n_tokens == 74  # ft2's extra rows have no tokens: left out


def test_no_tokenizer_anywhere_union_says_what_to_do(family):
    r = {"merge_method": "task_arithmetic", "base_model": family["base"],
         "tokenizer_source": "union",
         "models": [{"model": family["ft"][0], "parameters": {"weight": 1.0}}]}
    with pytest.raises(kinmerge.KinmergeError) as e:
        kinmerge.make_plan(r)
    assert f"tokenizer source 'union' needs the models' tokenizers, and {family['base']} has " \
           "no tokenizer files" in str(e.value)


def test_plan_shows_the_vocabulary(added, tmp_path):
    import yaml
    from click.testing import CliRunner

    from kinmerge.cli import main
    f = tmp_path / "r.yml"
    f.write_text(yaml.safe_dump(ta(added, tokenizer_source="union")))
    res = CliRunner().invoke(main, ["plan", str(f)])
    assert res.exit_code == 0, res.output
    assert (f"vocabulary: 75 tokens from union ({added['base']}'s tokenizer + 4 added), 75 "
            "embedding rows") in " ".join(res.output.split())


def test_in_memory_merge_has_a_tokenizer_with_the_new_tokens(added):
    merged = kinmerge.merge_to_memory(ta(added, tokenizer_source="union"))
    vocab = AutoTokenizer.from_pretrained(str(merged.tokenizer_dir)).get_vocab()
    assert vocab["<code>"] == 74 and merged.tensors[E].shape == (75, 8)
    assert kinmerge.merge_to_memory(ta(added, tokenizer_source="union")).tokenizer_dir \
        == merged.tokenizer_dir  # cached, written once
