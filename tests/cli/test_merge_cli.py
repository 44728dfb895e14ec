"""`kinmerge merge|validate|plan|methods` and `kinmerge-yaml`, including every bad input of
issue 2: one clear message, exit 2, no traceback, no partial output."""
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from kinmerge.cli import main
from kinmerge.cli.mergekit_compat import main as kinmerge_yaml
from kinmerge.zoo.synthetic import synthetic_llama


def run(args, cli=main):
    return CliRunner().invoke(cli, [str(a) for a in args])


def write(tmp_path, recipe: dict, name="r.yml") -> Path:
    f = tmp_path / name
    f.write_text(yaml.safe_dump(recipe))
    return f


def ties(fam, **kw):
    return {"merge_method": "ties", "base_model": fam["base"], "models": [
        {"model": m, "parameters": {"weight": 0.5, "density": 0.5}} for m in fam["ft"][:2]],
        **kw}


def test_merge_validate_plan_methods(family, tmp_path):
    f = write(tmp_path, ties(family))
    r = run(["merge", f, tmp_path / "out", "--seed", "3", "--out-shard-size", "5000"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "model.safetensors.index.json").exists()
    r = run(["validate", f])
    assert r.exit_code == 0 and "recipe OK: ties, 30 output tensors, 3 models" in r.output
    r = run(["plan", f, "--json", "--limit", "2"])
    rows = [json.loads(x) for x in r.output.splitlines()]
    assert len(rows) == 2 and rows[0]["params"]["density"] == [0.5, 0.5]
    assert run(["plan", f]).exit_code == 0
    r = run(["methods"])
    assert r.exit_code == 0 and all(m in r.output for m in ("ties", "slerp", "dare_ties"))
    assert "Yadav" in run(["methods", "ties"]).output
    r = run(["methods", "nuslerp"])
    assert "optional" in r.output and "nuslerp_flatten" in r.output


def test_kinmerge_yaml_accepts_mergekit_flags(family, tmp_path):
    f = write(tmp_path, ties(family))
    r = run([f, tmp_path / "out", "--cuda", "--allow-crimes", "--lazy-unpickle",
             "--copy-tokenizer", "--out-shard-size", "1B", "--write-model-card",
             "--random-seed", "1"], cli=kinmerge_yaml)
    # --cuda on a machine without a GPU is the one clear failure
    assert r.exit_code == 2 and "CUDA was requested but torch sees no GPU" in r.output
    r = run([f, tmp_path / "out", "--allow-crimes", "--lazy-unpickle", "--low-cpu-memory",
             "--out-shard-size", "1B", "--no-copy-tokenizer"], cli=kinmerge_yaml)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "model.safetensors").exists()


def bad(tmp_path, recipe_or_file, expected: str, out_name="out"):
    f = recipe_or_file if isinstance(recipe_or_file, Path) else write(tmp_path, recipe_or_file)
    out = tmp_path / out_name
    r = run(["merge", f, out])
    assert r.exit_code == 2, r.output
    assert expected in r.output, r.output
    assert "Traceback" not in r.output
    assert r.output.startswith("error: ")
    leftovers = [p.name for p in tmp_path.iterdir() if "kinmerge-tmp" in p.name]
    assert not leftovers
    return r.output


def test_unknown_method(family, tmp_path):
    bad(tmp_path, {**ties(family), "merge_method": "tiez"},
        "unknown merge_method 'tiez': did you mean 'ties'?")
    assert not (tmp_path / "out").exists()


def test_unknown_parameter(family, tmp_path):
    r = ties(family)
    r["models"][0]["parameters"]["densty"] = 0.5
    bad(tmp_path, r, "models[0].parameters: unknown parameter 'densty' for ties "
                     "(did you mean 'density'?")


def test_missing_parameter(family, tmp_path):
    r = ties(family)
    del r["models"][1]["parameters"]["weight"]
    bad(tmp_path, r, f"models[1] ({family['ft'][1]}): missing required parameter 'weight'")


def test_layer_range_outside_model(family, tmp_path):
    r = {"merge_method": "passthrough", "slices": [
        {"sources": [{"model": family["ft"][0], "layer_range": [0, 5]}]}]}
    bad(tmp_path, r, "slices[0].sources[0].layer_range [0, 5] is outside model "
                     f"{family['ft'][0]}, which has 3 layers")


def test_tensor_missing_in_one_model(family, tmp_path):
    small = synthetic_llama(tmp_path / "two_layers", layers=2, hidden=16, intermediate=24,
                            vocab=40, seed=5)
    r = ties(family)
    r["models"][1]["model"] = str(small)
    out = bad(tmp_path, r, f"tensor model.layers.2.input_layernorm.weight is missing in model "
                           f"{small}")
    assert "recipe has 9 problems" in out  # every missing tensor of layer 2, not just one


def test_shape_mismatch(family, tmp_path):
    wide = synthetic_llama(tmp_path / "wide", layers=3, hidden=16, intermediate=32, vocab=40)
    r = ties(family)
    r["models"][1]["model"] = str(wide)
    bad(tmp_path, r, "shape mismatch for model.layers.0.mlp.down_proj.weight: [16, 32] in "
                     f"{wide}, [16, 24] in {family['base']}")


def test_vocab_mismatch_says_how_to_fix(family, tmp_path):
    big = synthetic_llama(tmp_path / "big", layers=3, hidden=16, intermediate=24, vocab=48)
    r = ties(family)
    r["models"][1]["model"] = str(big)
    bad(tmp_path, r, "the vocabularies differ; set `tokenizer_source: base`")


def test_slerp_with_three_models(family, tmp_path):
    r = {"merge_method": "slerp", "base_model": family["base"], "parameters": {"t": 0.5},
         "models": [{"model": family["base"]}] + [{"model": m} for m in family["ft"][:2]]}
    bad(tmp_path, r, "slerp takes exactly 2 models, one of them the base_model; got 3")


def test_missing_base(family, tmp_path):
    r = ties(family)
    del r["base_model"]
    bad(tmp_path, r, "ties needs base_model")


def test_corrupt_safetensors(family, tmp_path):
    broken = synthetic_llama(tmp_path / "broken", layers=3, hidden=16, intermediate=24,
                             vocab=40)
    f = broken / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    r = ties(family)
    r["models"][1]["model"] = str(broken)
    bad(tmp_path, r, "corrupt or truncated safetensors file")


class Payload:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').close()",))


def test_pickled_code_payload(family, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "config.json").write_text("{}")
    with open(evil / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"model.norm.weight": Payload()}, fh)
    r = ties(family)
    r["models"][1]["model"] = str(evil)
    bad(tmp_path, r, "refused to unpickle a checkpoint that holds more than plain tensors")
    assert not (tmp_path / "PWNED").exists()


def test_output_exists(family, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    bad(tmp_path, ties(family), "output path")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    f = write(tmp_path, ties(family), "ok.yml")
    r = run(["merge", f, tmp_path / "out", "--overwrite"])  # not a model: never replaced
    assert r.exit_code == 2 and "exists and is not a model folder" in r.output
    (tmp_path / "out" / "config.json").write_text("{}")  # a previous merge: replaced whole
    assert run(["merge", f, tmp_path / "out", "--overwrite"]).exit_code == 0
    assert not (tmp_path / "out" / "keep.txt").exists()


def test_validate_lists_every_problem(tmp_path):
    f = write(tmp_path, {"merge_method": "ties", "models": [{"model": "a"}], "dtype": "x"})
    r = run(["validate", f])
    assert r.exit_code == 2 and "recipe has 3 problems" in r.output


def test_verbose_shows_traceback(tmp_path):
    f = write(tmp_path, {"merge_method": "nope", "models": []})
    r = run(["-v", "validate", f])
    assert r.exit_code == 2 and "Traceback" in r.output


@pytest.mark.parametrize("flag", ["--help"])
def test_help(flag):
    assert run([flag]).exit_code == 0


# every option of `mergekit-yaml --help` (0.1.5), with a value where it takes one
MERGEKIT_YAML_FLAGS = [
    ["--allow-crimes"], ["--no-allow-crimes"], ["--unsafe-truncate-embeddings"],
    ["--no-unsafe-truncate-embeddings"], ["--trust-remote-code"], ["--no-trust-remote-code"],
    ["--transformers-cache", "/tmp/hf"], ["--lora-merge-cache", "/tmp/lora"],
    ["--lora-merge-dtype", "bfloat16"], ["--random-seed", "7"], ["-v"], ["-vv"], ["--quiet"],
    ["--no-quiet"], ["--cuda"], ["--no-cuda"], ["--device", "cpu"], ["--low-cpu-memory"],
    ["--no-low-cpu-memory"], ["--lazy-unpickle"], ["--no-lazy-unpickle"], ["--read-to-gpu"],
    ["--no-read-to-gpu"], ["--multi-gpu"], ["--no-multi-gpu"], ["-j", "2"],
    ["--num-threads", "2"], ["--gpu-rich"], ["--async-write"], ["--no-async-write"],
    ["--write-threads", "4"], ["--out-shard-size", "1B"], ["--copy-tokenizer"],
    ["--no-copy-tokenizer"], ["--clone-tensors"], ["--no-clone-tensors"],
    ["--write-model-card"], ["--no-write-model-card"], ["--safe-serialization"],
    ["--no-safe-serialization"],
]


@pytest.mark.parametrize("flag", MERGEKIT_YAML_FLAGS, ids=lambda f: " ".join(f))
def test_kinmerge_yaml_parses_every_mergekit_flag(flag):
    ctx = kinmerge_yaml.make_context("kinmerge-yaml", ["c.yml", "out", *flag])
    p = ctx.params
    assert (p["config_file"], p["out_path"]) == ("c.yml", "out")
    expect = {"--random-seed": ("random_seed", 7), "-v": ("verbose", 1), "-vv": ("verbose", 2),
              "--quiet": ("quiet", True), "--cuda": ("cuda", True), "-j": ("num_threads", 2),
              "--num-threads": ("num_threads", 2), "--gpu-rich": ("gpu_rich", True),
              "--no-copy-tokenizer": ("copy_tokenizer", False),
              "--no-write-model-card": ("write_model_card", False),
              "--out-shard-size": ("out_shard_size", "1B"), "--device": ("device", "cpu"),
              "--unsafe-truncate-embeddings": ("unsafe_truncate_embeddings", True),
              "--no-unsafe-truncate-embeddings": ("unsafe_truncate_embeddings", False)}
    if flag[0] in expect:
        key, value = expect[flag[0]]
        assert p[key] == value


def test_kinmerge_yaml_threads_quiet_and_no_ops_merge(family, tmp_path):
    before = torch.get_num_threads()
    f = write(tmp_path, ties(family))
    r = run([f, tmp_path / "out", "-j", "1", "--quiet", "--async-write", "--write-threads", "3",
             "--no-lazy-unpickle", "--no-safe-serialization", "--lora-merge-dtype", "float16",
             "--no-copy-tokenizer"], cli=kinmerge_yaml)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "model.safetensors").exists()
    assert torch.get_num_threads() == before  # -j applies to this merge only
    r = run([f, tmp_path / "out2", "-j", "0"], cli=kinmerge_yaml)
    assert r.exit_code == 2 and "Invalid value for '-j' / '--num-threads'" in r.output


def test_kinmerge_yaml_breaks_ties_as_mergekit_by_default(family_bf16, tmp_path):
    """kinmerge-yaml's default top-k order is stock mergekit's; `kinmerge merge` keeps the
    stable one; --ties-topk and the recipe's `kinmerge: {topk}` choose either."""
    import kinmerge
    from safetensors.torch import load_file

    recipe = ties(family_bf16, dtype="bfloat16")
    want = {o: kinmerge.merge_to_memory(recipe, ties_topk=o).tensors
            for o in ("mergekit", "stable")}
    # the control: on these bfloat16 models the two orders give other bytes
    assert any(not torch.equal(want["mergekit"][n], want["stable"][n]) for n in want["stable"])

    def got(args, rec=recipe, merge_cmd=False):
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        where = [write(tmp_path, rec, f"{out.name}.yml"), out, *args]
        r = run(["merge", *where]) if merge_cmd else run(where, cli=kinmerge_yaml)
        assert r.exit_code == 0, r.output
        tensors = load_file(out / "model.safetensors")
        return next(o for o, w in want.items()
                    if all(torch.equal(tensors[n], w[n]) for n in w))

    assert got(["--no-copy-tokenizer"]) == "mergekit"
    assert got(["--no-copy-tokenizer", "--ties-topk", "stable"]) == "stable"
    assert got(["--no-copy-tokenizer"], {**recipe, "kinmerge": {"topk": "stable"}}) == "stable"
    assert got(["--no-copy-tokenizer", "--ties-topk", "mergekit"],
               {**recipe, "kinmerge": {"topk": "stable"}}) == "mergekit"
    assert got(["--no-progress", "--no-copy-tokenizer"], merge_cmd=True) == "stable"


def test_kinmerge_yaml_unsafe_truncate_embeddings(tmp_path):
    """As mergekit's flag: differing vocabularies keep the rows every model has (48 and 40
    rows: the first 40 of each, merged), config vocab_size follows; without it, refused."""
    from safetensors.torch import load_file

    big = synthetic_llama(tmp_path / "big", layers=1, hidden=8, intermediate=8, vocab=48, seed=0)
    small = synthetic_llama(tmp_path / "small", layers=1, hidden=8, intermediate=8, vocab=40,
                            seed=1)
    recipe = {"merge_method": "linear", "dtype": "float32", "models": [
        {"model": str(big), "parameters": {"weight": 1.0}},
        {"model": str(small), "parameters": {"weight": 1.0}}]}
    f = write(tmp_path, recipe)
    r = run([f, tmp_path / "refused", "--no-copy-tokenizer"], cli=kinmerge_yaml)
    assert r.exit_code == 2 and "shape mismatch for model.embed_tokens.weight" in r.output
    assert not (tmp_path / "refused").exists()
    r = run([f, tmp_path / "out", "--no-copy-tokenizer", "--unsafe-truncate-embeddings"],
            cli=kinmerge_yaml)
    assert r.exit_code == 0, r.output
    got, a, b = (load_file(d / "model.safetensors") for d in (tmp_path / "out", big, small))
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        assert got[name].shape == (40, 8)
        assert torch.equal(got[name], (a[name][:40] + b[name][:40]) / 2)
    assert torch.equal(got["model.norm.weight"], (a["model.norm.weight"]
                                                  + b["model.norm.weight"]) / 2)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["vocab_size"] == 40


def test_tables_keep_words_whole_when_piped(family, tmp_path):
    """Piped or redirected (CliRunner is not a terminal), a table is not wrapped: each
    method's summary and paper, and each plan row's tensor and inputs, sit whole on a line."""
    from kinmerge.methods import REGISTRY

    r = run(["methods"])
    assert r.exit_code == 0
    lines = r.output.splitlines()
    for m in REGISTRY.values():
        row = next(x for x in lines if x.startswith(f"│ {m.name} "))
        assert m.summary in row and m.paper in row, m.name
    f = write(tmp_path, ties(family))
    r = run(["plan", f])
    assert r.exit_code == 0, r.output
    row = next(x for x in r.output.splitlines() if "model.layers.0.mlp.up_proj.weight" in x)
    assert f"{family['ft'][0]}:model.layers.0.mlp.up_proj.weight" in row
    assert "density=[0.5, 0.5]" in row
    # the control: at a terminal's 80 columns the same table must wrap
    from rich.console import Console

    from kinmerge.cli import merge as cli_merge

    narrow = Console(width=80, record=True, file=open(os.devnull, "w"))
    old, cli_merge.out = cli_merge.out, narrow
    try:
        cli_merge.methods_cmd.callback(None)
    finally:
        cli_merge.out = old
    text = narrow.export_text()
    assert max(map(len, text.splitlines())) <= 80
    assert not any(REGISTRY["ties"].summary in x for x in text.splitlines())


@pytest.mark.parametrize("example,kind,key,command", [
    ("examples/breed-zoo.yml", "a breed", "pool", "breed"),
    ("examples/soup-zoo.yml", "a soup", "ingredients", "soup"),
    ("examples/evolve-zoo.yml", "an evolve", "fitness", "evolve"),
])
def test_validate_names_a_config_of_another_kind(example, kind, key, command):
    """One line that says what the file is and what runs it, not a line per unknown key."""
    root = Path(__file__).resolve().parents[2]
    r = run(["validate", root / example])
    assert r.exit_code == 2
    assert r.output == (f"error: this is {kind} config (it has `{key}:`), not a merge recipe\n"
                        f"  where: {root / example}\n"
                        f"  fix: use `kinmerge {command} {root / example} --out DIR` "
                        "(`validate`, `plan` and `merge` read merge recipes)\n")
    from kinmerge.core.recipe import NotARecipeError, load_recipe

    with pytest.raises(NotARecipeError) as e:
        load_recipe(root / example)
    assert e.value.fix.startswith(f"run it with kinmerge.search.{command}.{command}(")
    # the control: a recipe that merely misspells merge_method still lists its keys
    with pytest.raises(Exception, match="unknown key 'merge_methd'"):
        load_recipe({"merge_methd": "linear", "models": [{"model": "a"}]})


def test_a_multi_stage_recipe_read_as_one_recipe_names_the_command_that_runs_it(tmp_path):
    """A multi-document file is a multi-stage recipe: `kinmerge merge` and kinmerge-yaml run
    its stages; where one recipe is read (load_recipe), the error says what runs it (it used
    to say "fix the YAML at the line shown", with no line)."""
    f = tmp_path / "multi.yml"
    f.write_text("name: a\nmerge_method: linear\nmodels: [{model: x, parameters: {weight: 1}}]"
                 "\n---\nmerge_method: linear\nmodels: [{model: a, parameters: {weight: 1}}]\n")
    r = run([f, tmp_path / "out"], cli=kinmerge_yaml)  # runs stage a first: its model is missing
    assert r.exit_code == 2 and "model 'x' not found" in r.output, r.output
    assert "YAML documents" not in r.output and not (tmp_path / "out").exists()
    from kinmerge.core.recipe import load_recipe
    from kinmerge.errors import RecipeError
    from kinmerge.search.soup import load_soup_config

    with pytest.raises(RecipeError) as e:
        load_recipe(f)
    assert e.value.fix == (f"run it with kinmerge.merge({str(f)!r}, OUT) (it runs the stages in "
                           "order; kinmerge.core.multistage reads them)")
    assert e.value.cli_fix == f"run it with `kinmerge merge {f} OUT` (it runs the stages in order)"
    with pytest.raises(Exception) as e:  # any other file: one document, and how to get there
        load_soup_config(f)
    assert "holds 2 YAML documents (separated by `---`); a soup config is one" in str(e.value)
    # the control: kinmerge's own commands read the same file as its stages
    r = run(["validate", f, "--no-models"])
    assert r.exit_code == 0 and "recipe OK: 2 stages" in r.output
