"""`kinmerge validate RECIPE` with its models, in a fresh process: what it prints and what it
imports. Reading config.json and safetensors headers needs no torch, and neither does the
plan it checks against (names, shapes and dtypes: kinmerge.io.dtype); `plan` neither. Torch
loads where tensors are computed (`merge`), which gives the bytes it gave before."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import kinmerge

SRC = Path(__file__).resolve().parents[2] / "src"
TOKENIZER_GOLDEN = SRC.parent / "tests" / "data" / "parity_tokenizer_golden.safetensors"
# model.safetensors of `merge` on the TIES recipe below, as kinmerge wrote it while its plan
# still held torch dtypes and tensors (before the plan became torch-free)
TIES_SHA256 = "42b1233886555d0bc64368a376ed207f8ac12bdfec261a4116f081cc42047c7b"


def fresh(args: list[str]) -> tuple[int, list[str], str]:
    """`kinmerge ARGS` run as its own process: (exit code, modules of interest it loaded,
    its output)."""
    probe = ("import sys\nsys.argv = ['kinmerge', *sys.argv[1:]]\n"
             "from kinmerge.cli import main\n"
             "try:\n    main()\nexcept SystemExit as e:\n    code = e.code or 0\n"
             "print('LOADED=' + ','.join(m for m in ('torch', 'numpy', 'transformers') "
             "if m in sys.modules))\nprint('EXIT=' + str(code))\n")
    r = subprocess.run([sys.executable, "-c", probe, *map(str, args)], capture_output=True,
                       text=True, check=True,
                       env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "COLUMNS": "100",
                            "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    lines = r.stdout.splitlines()
    loaded = [m for m in lines[-2].removeprefix("LOADED=").split(",") if m]
    return int(lines[-1].removeprefix("EXIT=")), loaded, "\n".join(lines[:-2])


def ties_recipe(family) -> dict:
    return {"merge_method": "ties", "base_model": family["base"], "dtype": "float32",
            "models": [{"model": m, "parameters": {"weight": 0.5, "density": 0.5}}
                       for m in family["ft"][:2]]}


@pytest.fixture(scope="module")
def ties_file(family, tmp_path_factory):
    f = tmp_path_factory.mktemp("startup") / "ties.yml"
    f.write_text(yaml.safe_dump(ties_recipe(family)))
    return f


@pytest.fixture(scope="module")
def validated(ties_file):
    """(exit code, modules of interest loaded, output) of `kinmerge validate` on a TIES recipe
    over the test family, run as its own process."""
    return fresh(["validate", ties_file])


def test_validate_with_models_checks_them_in_a_fresh_process(validated):
    code, loaded, text = validated
    assert (code, text) == (0, "recipe OK: ties, 30 output tensors, 3 models")
    assert "transformers" not in loaded


def test_validate_with_models_loads_no_torch(validated):
    assert "torch" not in validated[1]


def test_plan_loads_no_torch_and_merge_gives_the_same_bytes(family, ties_file, tmp_path):
    """`plan --json` lists the plan `merge` runs without torch; `merge` still writes the bytes
    it wrote when the plan held torch dtypes."""
    code, loaded, text = fresh(["plan", ties_file, "--json"])
    assert code == 0 and "torch" not in loaded
    rows = [json.loads(line) for line in text.splitlines()]
    p = kinmerge.make_plan(ties_recipe(family))
    assert [(r["tensor"], tuple(r["shape"]), r["dtype"]) for r in rows] == [
        (j.name, j.shape, "float32") for j in p.jobs]
    assert rows[0]["params"] == {"weight": [0.5, 0.5], "density": [0.5, 0.5], "lambda_": 1.0,
                                 "normalize": True, "rescale": False, "topk": "stable"}
    code, loaded, text = fresh(["merge", ties_file, tmp_path / "out", "--no-progress"])
    assert (code, text) == (0, f"merged model written to {tmp_path / 'out'}") and "torch" in loaded
    written = (tmp_path / "out" / "model.safetensors").read_bytes()
    assert hashlib.sha256(written).hexdigest() == TIES_SHA256
    got, want = load_file(tmp_path / "out" / "model.safetensors"), kinmerge.merge_to_memory(
        ties_recipe(family)).tensors
    assert sorted(got) == sorted(want) and all(torch.equal(got[n], want[n]) for n in want)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["torch_dtype"] == "float32"


@pytest.fixture(scope="module")
def tokenizer_models(tmp_path_factory):
    """The tokenizer golden's base and fine-tunes (added tokens, tokenizer files) on disk,
    and its recipes with model names as paths."""
    with safe_open(TOKENIZER_GOLDEN, "pt") as f:
        meta = json.loads(f.metadata()["kinmerge_tokenizer_golden"])
    data, root = load_file(TOKENIZER_GOLDEN), tmp_path_factory.mktemp("tok")
    for m, files in meta["models"].items():
        (root / m).mkdir()
        save_file({k.split("/", 2)[2]: v for k, v in data.items() if k.startswith(f"in/{m}/")},
                  root / m / "model.safetensors", metadata={"format": "pt"})
        for name, text in files.items():
            (root / m / name).write_text(text)

    def resolve(o, key=None):
        if isinstance(o, dict):
            return {k: resolve(v, k) for k, v in o.items()}
        if isinstance(o, list):
            return [resolve(v) for v in o]
        keyword = key in ("tokenizer_source", "source") and o in ("base", "union")
        return str(root / o) if o in meta["models"] and key in (
            "model", "base_model", "source", "tokenizer_source") and not keyword else o

    return root, {n: resolve(c["recipe"]) for n, c in meta["cases"].items()}


def test_tokenizer_surgery_and_multistage_recipes_validate_without_torch(tokenizer_models):
    """The `tokenizer:` block (union, configured rows, padding) and a multi-stage recipe whose
    stages lay out vocabularies: their row maps are planned from plain ints."""
    root, recipes = tokenizer_models
    f = root / "block.yml"
    f.write_text(yaml.safe_dump(recipes["block_tokens_pad_f32"]))
    code, loaded, text = fresh(["validate", f])
    assert (code, loaded) == (0, [])
    assert text == "recipe OK: task_arithmetic, 21 output tensors, 3 models"
    # a stage laying out the union's vocabulary, a second taking its output whole
    stages = recipes["multi_union_slerp_linear_f32"][:1] + [
        {"merge_method": "passthrough", "models": [{"model": "stage-a"}]}]
    f = root / "multi.yml"
    f.write_text(yaml.safe_dump_all(stages))
    code, loaded, text = fresh(["validate", f])
    assert (code, loaded) == (0, [])
    assert text.splitlines() == ["stage stage-a OK: task_arithmetic, 21 output tensors, 3 models",
                                 "stage final OK: passthrough, 21 output tensors, 1 models"]
    code, loaded, text = fresh(["plan", f, "--json"])
    assert (code, loaded) == (0, [])
    rows = [json.loads(line) for line in text.splitlines()]
    emb = {r["stage"]: r["shape"] for r in rows if r["tensor"] == "model.embed_tokens.weight"}
    base_rows = json.loads((root / "base" / "config.json").read_text())["vocab_size"]
    # the union adds the fine-tunes' tokens to the base's rows; the next stage takes them
    assert emb["stage-a"] == emb[None] and emb["stage-a"][0] > base_rows


def test_a_lora_recipe_validates_without_torch(family, tmp_path):
    """`base+lora`: the adapter is checked from its safetensors header, a tensor it stores
    whole (modules_to_save) included."""
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "modules_to_save": ["lm_head"]}))
    g = torch.Generator().manual_seed(3)
    key = "base_model.model.model.layers.0.self_attn.q_proj"
    save_file({f"{key}.lora_A.weight": torch.randn(2, 16, generator=g),
               f"{key}.lora_B.weight": torch.randn(16, 2, generator=g),
               "base_model.model.lm_head.modules_to_save.weight": torch.randn(40, 16, generator=g)},
              lora / "adapter_model.safetensors")
    r = {"merge_method": "task_arithmetic", "base_model": family["base"], "dtype": "float32",
         "models": [{"model": f"{family['base']}+{lora}", "parameters": {"weight": 0.5}},
                    {"model": family["ft"][0], "parameters": {"weight": 0.5}}]}
    f = tmp_path / "lora.yml"
    f.write_text(yaml.safe_dump(r))
    code, loaded, text = fresh(["validate", f])
    assert (code, loaded, text) == (0, [], "recipe OK: task_arithmetic, 30 output tensors, "
                                           "3 models")
