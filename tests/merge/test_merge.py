"""End to end: recipe -> plan -> execute -> model directory, checked tensor by tensor."""
import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import kinmerge
from kinmerge.io.reader import ModelReader
from kinmerge.methods.slerp import slerp
from kinmerge.methods.task_vector import ties


def load_dir(d) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(Path(d).glob("*.safetensors")):
        out.update(load_file(f))
    return out


def digest(d) -> str:
    h = hashlib.sha256()
    for f in sorted(Path(d).glob("*.safetensors")):
        h.update(f.read_bytes())
    return h.hexdigest()


def ties_recipe(fam, **extra):
    return {"merge_method": "ties", "base_model": fam["base"], "models": [
        {"model": fam["base"]},
        {"model": fam["ft"][0], "parameters": {"weight": 1.0, "density": [1, 0.7, 0.1]}},
        {"model": fam["ft"][1], "parameters": {"weight": 0.5, "density": 0.5}}], **extra}


def test_ties_with_layer_gradient_density(family, tmp_path):
    out = kinmerge.merge(ties_recipe(family), tmp_path / "m")
    got = load_dir(out)
    b, a, c = (ModelReader(p) for p in (family["base"], *family["ft"][:2]))
    assert sorted(got) == b.names()
    # 3 layers: u = 0, 0.5, 1 -> density 1, 0.7, 0.1; outside the layers u = 0 -> 1
    for name in b.names():
        layer = {"model.layers.0.": 1.0, "model.layers.1.": 0.7, "model.layers.2.": 0.1}
        d0 = next((v for k, v in layer.items() if name.startswith(k)), 1.0)
        want = ties([a.get(name), c.get(name)], b.get(name), weight=[1.0, 0.5],
                    density=[d0, 0.5])
        assert torch.equal(got[name], want), name


def test_slerp_with_filter_gradients(family, tmp_path):
    t = [{"filter": "self_attn", "value": [0, 0.5, 1]}, {"filter": "mlp", "value": [1, 0]},
         {"value": 0.25}]
    r = {"merge_method": "slerp", "base_model": family["base"], "parameters": {"t": t},
         "models": [{"model": family["base"]}, {"model": family["ft"][0]}]}
    got = kinmerge.merge_to_memory(r).tensors
    b, a = ModelReader(family["base"]), ModelReader(family["ft"][0])
    cases = {"model.layers.1.self_attn.q_proj.weight": 0.5,
             "model.layers.2.self_attn.o_proj.weight": 1.0,
             "model.layers.0.mlp.up_proj.weight": 1.0, "model.layers.1.mlp.up_proj.weight": 0.5,
             "model.layers.2.input_layernorm.weight": 0.25, "lm_head.weight": 0.25}
    for name, tv in cases.items():
        assert torch.equal(got[name], slerp([a.get(name)], b.get(name), t=tv, accum=torch.float32)), name
    assert torch.equal(got["model.layers.0.self_attn.q_proj.weight"],
                       b.get("model.layers.0.self_attn.q_proj.weight"))  # t = 0: the base


def test_passthrough_stacks_layers_and_rewrites_config(family, tmp_path):
    a, b = family["ft"][0], family["ft"][1]
    r = {"merge_method": "passthrough", "dtype": "float32", "slices": [
        {"sources": [{"model": a, "layer_range": [0, 2]}]},
        {"sources": [{"model": b, "layer_range": [1, 3]}]}]}
    out = kinmerge.merge(r, tmp_path / "frank")
    got = load_dir(out)
    ra, rb = ModelReader(a), ModelReader(b)
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 4
    for i, (src, j) in enumerate([(ra, 0), (ra, 1), (rb, 1), (rb, 2)]):
        name = f"model.layers.{i}.mlp.down_proj.weight"
        assert torch.equal(got[name], src.get(f"model.layers.{j}.mlp.down_proj.weight"))
    assert torch.equal(got["model.embed_tokens.weight"], ra.get("model.embed_tokens.weight"))
    assert torch.equal(got["model.norm.weight"], rb.get("model.norm.weight"))
    assert torch.equal(got["lm_head.weight"], rb.get("lm_head.weight"))
    assert len(got) == 4 * 9 + 3
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.num_hidden_layers == 4


def test_linear_slices_gradient_is_relative_to_the_slice(family):
    a, b = family["ft"][0], family["ft"][1]
    w = [0.0, 1.0]
    r = {"merge_method": "linear", "slices": [{"sources": [
        {"model": a, "layer_range": [1, 3], "parameters": {"weight": w}},
        {"model": b, "layer_range": [1, 3], "parameters": {"weight": 1.0}}]}]}
    got = kinmerge.merge_to_memory(r).tensors
    ra, rb = ModelReader(a), ModelReader(b)
    n = "mlp.gate_proj.weight"
    # output layer 0 = input layer 1, u = 0 -> weight of a is 0: all b
    assert torch.equal(got[f"model.layers.0.{n}"], rb.get(f"model.layers.1.{n}"))
    # output layer 1 = input layer 2, u = 1 -> (a + b) / 2
    want = (ra.get(f"model.layers.2.{n}") + rb.get(f"model.layers.2.{n}")) / 2
    torch.testing.assert_close(got[f"model.layers.1.{n}"], want)


def test_parameter_lookup_order(family):
    """slice source > slice > model > global."""
    a, b = family["ft"][0], family["ft"][1]
    r = {"merge_method": "linear", "parameters": {"weight": 5.0, "normalize": False},
         "slices": [{"parameters": {"weight": 2.0}, "sources": [
             {"model": a, "layer_range": [0, 3], "parameters": {"weight": 1.0}},
             {"model": b, "layer_range": [0, 3]}]}]}
    p = kinmerge.make_plan(r)
    assert {tuple(j.params["weight"]) for j in p.jobs} == {(1.0, 2.0)}
    assert all(j.params["normalize"] is False for j in p.jobs)


def test_same_seed_same_bytes_other_seed_other_bytes(family, tmp_path):
    r = {"merge_method": "dare_ties", "base_model": family["base"], "models": [
        {"model": m, "parameters": {"weight": 0.5, "density": 0.4}} for m in family["ft"]]}
    d1 = digest(kinmerge.merge(r, tmp_path / "1", seed=7))
    d2 = digest(kinmerge.merge(r, tmp_path / "2", seed=7))
    d3 = digest(kinmerge.merge(r, tmp_path / "3", seed=8))
    assert d1 == d2 != d3
    r["seed"] = 7
    assert digest(kinmerge.merge(r, tmp_path / "4")) == d1  # the recipe's seed


def test_in_memory_equals_on_disk(family, tmp_path):
    r = ties_recipe(family, dtype="bfloat16")
    mem = kinmerge.merge_to_memory(r)
    disk = load_dir(kinmerge.merge(r, tmp_path / "m"))
    assert mem.tensors.keys() == disk.keys()
    assert all(torch.equal(mem.tensors[k], disk[k]) for k in disk)
    assert all(t.dtype == torch.bfloat16 for t in disk.values())


def test_dtype_and_out_dtype(family_bf16, tmp_path):
    fam = family_bf16
    r = {"merge_method": "task_arithmetic", "base_model": fam["base"], "dtype": "float32",
         "out_dtype": "bfloat16", "models": [{"model": fam["ft"][0],
                                              "parameters": {"weight": 0.3}}]}
    got = kinmerge.merge_to_memory(r)
    b, a = ModelReader(fam["base"]), ModelReader(fam["ft"][0])
    n = "model.layers.1.mlp.up_proj.weight"
    want = (b.get(n).float() + 0.3 * (a.get(n).float() - b.get(n).float())).bfloat16()
    assert torch.equal(got.tensors[n], want)
    assert got.config["torch_dtype"] == "bfloat16"
    # without dtype: the inputs' own dtype; work_dtype=float32 upcasts the arithmetic
    r.pop("dtype"), r.pop("out_dtype")
    assert kinmerge.merge_to_memory(r).tensors[n].dtype == torch.bfloat16
    f32 = kinmerge.merge_to_memory(r, work_dtype="float32").tensors[n]
    assert f32.dtype == torch.bfloat16 and torch.equal(f32, want)


def test_sharded_output_hf_names_and_index(family, tmp_path):
    r = ties_recipe(family)
    out = kinmerge.merge(r, tmp_path / "s", out_shard_size=4000)
    files = sorted(p.name for p in out.glob("*.safetensors"))
    n = len(files)
    assert n > 1 and files == [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
    index = json.loads((out / "model.safetensors.index.json").read_text())
    got = load_dir(out)
    assert set(index["weight_map"]) == set(got)
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size()
                                                  for t in got.values())
    single = load_dir(kinmerge.merge(r, tmp_path / "one"))
    assert all(torch.equal(single[k], got[k]) for k in got)


# a Jinja template (mergekit refuses one under 20 characters, or without "{", as a typo)
TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}"


def test_side_files(family, tmp_path):
    (Path(family["base"]) / "tokenizer.json").write_text('{"fake": true}')
    try:
        out = kinmerge.merge(ties_recipe(family, chat_template=TEMPLATE), tmp_path / "m")
    finally:
        (Path(family["base"]) / "tokenizer.json").unlink()
    assert (out / "tokenizer.json").read_text() == '{"fake": true}'
    assert (out / "chat_template.jinja").read_text() == TEMPLATE
    card = (out / "README.md").read_text()
    assert card.startswith("---\nbase_model:\n") and "- merge\n- kinmerge" in card
    assert "merge_method: ties" in card
    assert kinmerge.load_recipe(out / "mergekit_config.yml").merge_method == "ties"
    bare = kinmerge.merge(ties_recipe(family), tmp_path / "bare", copy_tokenizer=False,
                          write_model_card=False)
    assert not (bare / "README.md").exists() and not (bare / "tokenizer.json").exists()


def test_overwrite_replaces_atomically(family, tmp_path):
    out = tmp_path / "m"
    kinmerge.merge(ties_recipe(family), out)
    (out / "stale.txt").write_text("old")
    kinmerge.merge(ties_recipe(family), out, overwrite=True)
    assert not (out / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_vocab_mismatch_aligned_to_base_with_warning(family, tmp_path, caplog):
    from kinmerge.zoo.synthetic import synthetic_llama
    big = synthetic_llama(tmp_path / "big", layers=3, hidden=16, intermediate=24, vocab=44,
                          seed=9)
    r = {"merge_method": "task_arithmetic", "base_model": family["base"],
         "tokenizer_source": "base",
         "models": [{"model": str(big), "parameters": {"weight": 0.5}}]}
    with caplog.at_level("WARNING"):
        out = kinmerge.merge(r, tmp_path / "m")
    assert "model.embed_tokens.weight: model " in caplog.text and "44 rows, the base 40" in caplog.text
    got = load_dir(out)
    assert got["model.embed_tokens.weight"].shape == (40, 16)
    base, rb = ModelReader(family["base"]), ModelReader(big)
    e = "model.embed_tokens.weight"
    want = base.get(e) + 0.5 * (rb.get(e)[:40] - base.get(e))
    assert torch.equal(got[e], want)


def test_linear_takes_an_unlisted_base_model_as_an_input(family):
    b, a = family["base"], family["ft"][0]
    r = {"merge_method": "linear", "base_model": b, "models": [
        {"model": a, "parameters": {"weight": 1.0}}]}
    with pytest.raises(kinmerge.KinmergeError,
                       match=r"base_model \(.*an input of linear\): missing required "
                             r"parameter 'weight'"):
        kinmerge.load_recipe(r)
    r["parameters"] = {"weight": 1.0}
    got = kinmerge.merge_to_memory(r).tensors["model.norm.weight"]
    n = "model.norm.weight"
    want = (ModelReader(b).get(n) + ModelReader(a).get(n)) / 2
    torch.testing.assert_close(got, want)


def test_plan_settles_each_jobs_dtypes(family_bf16):
    """One owner for precision: plan gives every job its working, accumulation and output
    dtype; accumulation comes from the registry (linear and slerp: float32, float64
    work stays float64) and the executor passes it on."""
    from kinmerge.core.merge import open_models
    from kinmerge.core.plan import plan
    from kinmerge.core.recipe import load_recipe

    fam = family_bf16
    models = [{"model": m, "parameters": {"weight": 1.0}} for m in fam["ft"][:2]]

    def jobs(data, **kw):
        r = load_recipe(data)
        with open_models(r) as readers:
            return {(j.work_dtype, j.accum_dtype, j.out_dtype) for j in plan(r, readers, **kw).jobs}

    # the plan's dtypes are torch-free values (kinmerge.io.dtype), equal to torch's
    from kinmerge.io.dtype import as_dtype
    bf, f32, f64 = (as_dtype(n) for n in ("bfloat16", "float32", "float64"))
    assert bf == torch.bfloat16 and bf.torch is torch.bfloat16 and bf != torch.float16
    assert jobs({"merge_method": "linear", "models": models}) == {(bf, f32, bf)}
    assert jobs({"merge_method": "linear", "models": models}, work_dtype="float64") == {
        (f64, f64, bf)}
    assert jobs({"merge_method": "linear", "models": models, "dtype": "float32",
                 "out_dtype": "bfloat16"}) == {(f32, f32, bf)}
    ta = {"merge_method": "task_arithmetic", "base_model": fam["base"], "models": models}
    assert jobs(ta) == {(bf, None, bf)}  # no wider accumulation declared
    # the executor applies it: a bfloat16 linear merge sums in float32, rounds once
    r = {"merge_method": "linear", "models": models}
    n = "model.layers.1.mlp.up_proj.weight"
    a, b = (ModelReader(m).get(n) for m in fam["ft"][:2])
    got = kinmerge.merge_to_memory(r).tensors[n]
    assert torch.equal(got, ((a.float() + b.float()) / 2).bfloat16())
