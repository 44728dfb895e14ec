"""Issue 10, input side: nothing outside a model folder is read or copied (10.1); every bad
model input is one KinmergeError, exit 2, no traceback, no hang (10.3); valid Hugging Face
folders are not refused (10.8); the pickle refusal speaks for itself (10.10)."""
from __future__ import annotations

import json
import os
import pickle
import stat
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import kinmerge
from kinmerge import lineage as lin
from kinmerge.cli.mergekit_compat import main as kinmerge_yaml
from kinmerge.errors import KinmergeError, ModelLoadError, PlanError, UnsafeCheckpointError
from kinmerge.evaluate.model import tokenizer
from kinmerge.io.reader import ModelReader
from kinmerge.lineage.publish import prepare
from kinmerge.zoo.synthetic import synthetic_llama

from inputs_kit import TINY, assert_clean_failure, cli, recipe, tiny  # noqa: F401
from payload_kit import FORMATS, write_code_payload

SECRET = b"secret bytes from outside the model folder"


def shard_model(d: Path, weight_map: dict) -> Path:
    """A folder with one real shard and an index whose weight_map is `weight_map`."""
    d.mkdir(parents=True, exist_ok=True)
    save_file({"x": torch.ones(2)}, d / "model-00001-of-00002.safetensors")
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return d


def outside_shard(tmp_path: Path) -> Path:
    f = tmp_path / "outside" / "secret.safetensors"
    f.parent.mkdir(exist_ok=True)
    save_file({"y": torch.full((2,), 7.0)}, f)
    return f


# --- 10.1: nothing outside the model folder is read or copied ----------------------------------

def test_index_naming_a_file_outside_the_folder_is_refused(tmp_path):
    secret = outside_shard(tmp_path)
    cases = {"dotdot": "../outside/secret.safetensors", "absolute": str(secret)}
    for key, target in cases.items():
        d = shard_model(tmp_path / key, {"x": "model-00001-of-00002.safetensors", "y": target})
        with pytest.raises(ModelLoadError) as e:
            ModelReader(d)
        if key == "dotdot":
            assert e.value.what.startswith("shard '../outside/secret.safetensors' is a path "
                                           "leading outside the model folder (to ")
            assert e.value.what.endswith("kinmerge reads nothing outside a model's folder")
        else:
            assert e.value.what == (f"shard {str(secret)!r} is not a file name inside the "
                                    "model folder")


def test_shard_symlink_leaving_the_folder_is_refused_but_one_inside_works(tmp_path):
    secret = outside_shard(tmp_path)
    d = shard_model(tmp_path / "m", {"x": "model-00001-of-00002.safetensors",
                                     "y": "model-00002-of-00002.safetensors"})
    (d / "model-00002-of-00002.safetensors").symlink_to(secret)
    with pytest.raises(ModelLoadError, match="shard 'model-00002-of-00002.safetensors' is a "
                                             "link leading outside the model folder"):
        ModelReader(d)
    # the same without an index: the globbed file is checked too
    g = tmp_path / "glob"
    g.mkdir()
    (g / "model.safetensors").symlink_to(secret)
    with pytest.raises(ModelLoadError, match="weight file 'model.safetensors' is a link"):
        ModelReader(g)
    # a link that stays inside the folder is an ordinary file
    (d / "model-00002-of-00002.safetensors").unlink()
    (d / "store").mkdir()
    save_file({"y": torch.full((2,), 3.0)}, d / "store" / "real.safetensors")
    (d / "model-00002-of-00002.safetensors").symlink_to("store/real.safetensors")
    assert torch.equal(ModelReader(d).get("y"), torch.full((2,), 3.0))


@pytest.mark.parametrize("weight_map,why", [
    ({"x": 3}, "model.safetensors.index.json maps tensor 'x' to 3, not a file name"),
    ({"x": None}, "maps tensor 'x' to None, not a file name"),
    ({"x": ["a.safetensors"]}, "maps tensor 'x' to ['a.safetensors'], not a file name"),
    (["model-00001-of-00002.safetensors"], "has no valid weight_map"),
    ("model-00001-of-00002.safetensors", "has no valid weight_map"),
    ({"x": ""}, "shard '' is not a file name inside the model folder"),
])
def test_malformed_weight_map_is_refused_before_any_read(tmp_path, monkeypatch, weight_map, why):
    import kinmerge.io.reader as reader
    monkeypatch.setattr(reader, "read_header", lambda f: pytest.fail(f"read {f}"))
    d = shard_model(tmp_path / "m", weight_map)
    with pytest.raises(ModelLoadError) as e:
        ModelReader(d)
    assert why in e.value.what


def test_bin_index_escaping_the_folder_is_refused(tmp_path):
    (tmp_path / "outside").mkdir()
    torch.save({"y": torch.ones(1)}, tmp_path / "outside" / "w.bin")
    d = tmp_path / "m"
    d.mkdir()
    torch.save({"x": torch.ones(1)}, d / "pytorch_model.bin")
    (d / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": {
        "x": "pytorch_model.bin", "y": "../outside/w.bin"}}))
    with pytest.raises(ModelLoadError, match="shard '../outside/w.bin' is a path leading "
                                             "outside the model folder"):
        ModelReader(d)


def test_hub_cache_snapshot_links_into_blobs_still_work(tmp_path, monkeypatch):
    """The real cache layout: snapshots/<rev>/<file> -> ../../blobs/<hash>."""
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    src = synthetic_llama(tmp_path / "src", **TINY)
    (src / "tokenizer.json").write_text('{"tok": "cached"}')
    repo = cache / "models--org--tiny"
    snap = repo / "snapshots" / ("c" * 40)
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for i, f in enumerate(sorted(src.iterdir())):
        (repo / "blobs" / f"blob{i}").write_bytes(f.read_bytes())
        (snap / f.name).symlink_to(f"../../blobs/blob{i}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c" * 40)
    r = ModelReader("org/tiny")
    assert r.config["num_hidden_layers"] == 2 and len(r.names()) == 21
    (snap / "sub").mkdir()  # a model in a subfolder of a snapshot, opened by its path
    for i, f in enumerate(sorted(src.iterdir())):
        (snap / "sub" / f.name).symlink_to(f"../../../blobs/blob{i}")
    assert ModelReader(snap / "sub").names() == r.names()
    out = kinmerge.merge({"merge_method": "linear", "models": [
        {"model": "org/tiny", "parameters": {"weight": 1.0}}]}, tmp_path / "out")
    assert (out / "tokenizer.json").read_text() == '{"tok": "cached"}'
    # a snapshot link that leaves the cache entry is refused like any other
    (snap / "tokenizer.json").unlink()
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (snap / "tokenizer.json").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(ModelLoadError, match="'tokenizer.json' is a link"):
        kinmerge.merge({"merge_method": "linear", "models": [
            {"model": "org/tiny", "parameters": {"weight": 1.0}}]}, tmp_path / "out2")


@pytest.mark.parametrize("side", ["tokenizer.json", "generation_config.json",
                                  "chat_template.jinja", "tokenizer_config.json"])
def test_side_file_symlink_leaving_the_folder_is_not_copied(tiny, side):
    root = tiny["root"]
    (root / "secret.txt").write_bytes(SECRET)
    f = tiny["base"] / side
    f.unlink(missing_ok=True)
    f.symlink_to(root / "secret.txt")
    r = cli("merge", recipe(root, tiny["base"], tiny["ft"]), root / "out")
    assert_clean_failure(r, f"error: '{side}' is a link leading outside the model folder",
                         "fix: replace the link by a copy of the file inside the model folder")
    assert not (root / "out").exists()
    assert not any(SECRET in p.read_bytes() for p in root.rglob("*")
                   if p.is_file() and not p.is_symlink() and p.name != "secret.txt")


def test_side_file_symlink_inside_the_folder_is_copied_as_content(tiny):
    base = tiny["base"]
    (base / "extra").mkdir()
    (base / "tokenizer.json").rename(base / "extra" / "tok.json")
    (base / "tokenizer.json").symlink_to("extra/tok.json")
    out = kinmerge.merge(recipe(tiny["root"], base, tiny["ft"]), tiny["root"] / "out")
    assert not (out / "tokenizer.json").is_symlink()
    assert (out / "tokenizer.json").read_text() == '{"tok": "base"}'


def test_lineage_tokenizer_dir_and_push_refuse_links_leaving_the_folder(tiny):
    root, base = tiny["root"], tiny["base"]
    (root / "secret.txt").write_bytes(SECRET)
    (base / "lineage.json").symlink_to(root / "secret.txt")
    with pytest.raises(ModelLoadError, match="'lineage.json' is a link leading outside the "
                                             "model folder"):
        lin.read(base)
    # a merge treats that parent as a root (its lineage is a stranger's), and goes on
    out = kinmerge.merge(recipe(root, base, tiny["ft"]), root / "out")
    assert lin.read(out).model.parents
    with pytest.raises(ModelLoadError, match="is a link leading outside the model folder"):
        prepare(base)  # push would upload the link's target
    (base / "lineage.json").unlink()
    (base / "vocab.json").symlink_to(root / "secret.txt")
    with pytest.raises(ModelLoadError, match="'vocab.json' is a link"):
        tokenizer(base)
    (base / "vocab.json").unlink()
    (base / "lineage.json").write_text("[1, 2]")
    with pytest.raises(ModelLoadError, match="lineage.json is not a kinmerge lineage record"):
        lin.read(base)


def test_chat_template_auto_reads_input_templates_bounded(tiny, monkeypatch):
    """`chat_template: auto` reads each input's template: a template that is not UTF-8, or
    larger than a template can be, is one clean error naming the file, nothing written."""
    from kinmerge.tokenizer import chat
    root, base = tiny["root"], tiny["base"]
    f = base / "chat_template.jinja"
    f.write_bytes(b"\xff\xfe{{ x }}")
    r = cli("merge", recipe(root, base, tiny["ft"], chat_template="auto"), root / "out")
    assert_clean_failure(r, "error: chat_template.jinja is not UTF-8 text (byte 0)",
                         f"where: {f}", "fix: save the template as UTF-8, or remove the file")
    assert not (root / "out").exists()
    monkeypatch.setattr(chat, "MAX_TEMPLATE", 4)
    f.write_text("{{ messages }} and more")  # 23 bytes, over 4 * 4
    with pytest.raises(ModelLoadError, match="chat_template.jinja holds more than 16 bytes"):
        chat.model_template(base)
    f.unlink()
    (base / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ m }}"}))
    assert chat.model_template(base) == "{{ m }}"


def test_lineage_json_is_read_bounded(tiny, monkeypatch):
    from kinmerge.lineage import record
    out = kinmerge.merge(recipe(tiny["root"], tiny["base"], tiny["ft"]), tiny["root"] / "out")
    size = (out / "lineage.json").stat().st_size
    assert lin.read(out).model.parents
    monkeypatch.setattr(record, "MAX_BYTES", size - 1)
    with pytest.raises(ModelLoadError, match=f"lineage.json holds more than {size - 1:,} bytes"):
        lin.read(out)


# --- 10.3: bad model inputs are one clean error -----------------------------------------------

@pytest.mark.parametrize("content,why", [
    (b"[1, 2, 3]", "config.json holds a JSON list, not an object"),
    (b'"llama"', "config.json holds a JSON string, not an object"),
    (b'{"a": "\xff\xfe"}', "config.json is not UTF-8 text (byte 7)"),
    (b"{nope", "config.json is not valid JSON: Expecting property name"),
    (b"[" * 100000 + b"]" * 100000, "config.json is not valid JSON"),
    (b'{"num_hidden_layers": "2"}', "config.json key 'num_hidden_layers' is a JSON string, "
                                   "expected a non-negative integer"),
    (b'{"architectures": {"a": 1}}', "config.json key 'architectures' is a JSON object, "
                                    "expected a list of strings"),
    (b'{"tie_word_embeddings": "yes"}', "config.json key 'tie_word_embeddings' is a JSON "
                                       "string, expected true or false"),
])
def test_bad_config_json(tiny, content, why):
    (tiny["ft"] / "config.json").write_bytes(content)
    with pytest.raises(ModelLoadError) as e:
        ModelReader(tiny["ft"])
    assert e.value.what.startswith(why)
    r = cli("merge", recipe(tiny["root"], tiny["base"], tiny["ft"]), tiny["root"] / "out")
    assert_clean_failure(r, why)


def test_config_json_that_is_a_folder_or_fifo(tiny):
    (tiny["ft"] / "config.json").unlink()
    (tiny["ft"] / "config.json").mkdir()
    with pytest.raises(ModelLoadError, match="config.json is a directory, not a regular file"):
        ModelReader(tiny["ft"])
    (tiny["ft"] / "config.json").rmdir()
    os.mkfifo(tiny["ft"] / "config.json")
    assert "is a FIFO (named pipe), not a regular file" in _no_hang(ModelReader, tiny["ft"])


def _no_hang(fn, *args, timeout=20.0) -> str:
    """fn(*args) in a thread: must raise a KinmergeError within `timeout`; returns its text."""
    box: dict = {}

    def target():
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the test below
            box["e"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"{fn.__name__} hung on a FIFO"
    assert isinstance(box.get("e"), KinmergeError), box
    return str(box["e"])


@pytest.mark.parametrize("weight", ["model.safetensors", "pytorch_model.bin"])
def test_fifo_or_folder_where_the_weights_should_be(tmp_path, weight):
    d = tmp_path / "m"
    d.mkdir()
    os.mkfifo(d / weight)
    msg = _no_hang(ModelReader, d)
    assert f"weight file {weight} is a FIFO (named pipe), not a regular file" in msg
    (d / weight).unlink()
    (d / weight).mkdir()
    if weight.endswith(".bin"):  # a folder named *.bin is not a checkpoint
        with pytest.raises(ModelLoadError, match=f"weight file {weight} is a directory"):
            ModelReader(d)
    else:
        with pytest.raises(ModelLoadError, match=f"weight file {weight} is a directory"):
            ModelReader(d)


def test_fifo_side_file_does_not_hang_the_merge(tiny):
    (tiny["base"] / "tokenizer.json").unlink()
    os.mkfifo(tiny["base"] / "tokenizer.json")
    rec = recipe(tiny["root"], tiny["base"], tiny["ft"])
    msg = _no_hang(kinmerge.merge, rec, tiny["root"] / "out")
    assert "tokenizer.json is a FIFO (named pipe), not a regular file" in msg


def test_over_long_path_component(tiny):
    long_name = "m" * 300
    with pytest.raises(ModelLoadError) as e:
        ModelReader(tiny["root"] / long_name)
    assert e.value.what.endswith("File name too long")
    assert "shorten the path" in e.value.fix
    r = cli("merge", recipe(tiny["root"], tiny["base"], tiny["root"] / long_name),
            tiny["root"] / "out")
    assert_clean_failure(r, "File name too long", "fix: shorten the path")


def test_unreadable_files(tiny, monkeypatch):
    """EACCES on a weight file and on config.json (simulated: the tests may run as root)."""
    import kinmerge.io.safetensors_file as stf

    def denied(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(stf, "open", denied, raising=False)
    with pytest.raises(ModelLoadError) as e:
        ModelReader(tiny["ft"])
    assert e.value.what == "cannot read weight file model.safetensors: Permission denied"
    assert e.value.fix == "make it readable (`chmod u+r`) or run as its owner"
    monkeypatch.undo()
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: denied(p) if p.name == "config.json"
                        else real(p))
    with pytest.raises(ModelLoadError, match="cannot read config.json: Permission denied"):
        ModelReader(tiny["ft"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_weight_file_for_real(tiny):
    (tiny["ft"] / "model.safetensors").chmod(0)
    with pytest.raises(ModelLoadError, match="Permission denied"):
        ModelReader(tiny["ft"])


def test_unsupported_dtype_is_not_called_corrupt(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    save_file({"w": torch.ones(2, dtype=torch.float8_e4m3fn)}, d / "model.safetensors")
    with pytest.raises(ModelLoadError) as e:
        ModelReader(d)
    assert e.value.what == ("tensor 'w' has dtype F8_E4M3, which is not supported by kinmerge "
                            "(supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)")
    assert "re-download" not in e.value.message and "corrupt" not in e.value.message
    save_file({"w": torch.ones(2, dtype=torch.uint16)}, d / "model.safetensors")
    with pytest.raises(ModelLoadError, match="dtype U16, which is not supported by kinmerge"):
        ModelReader(d)


# --- 10.8: valid Hugging Face folders are not refused -----------------------------------------

class TrainingArgs:  # what transformers pickles into training_args.bin
    lr = 1e-4


def test_bin_weights_beside_training_files(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    sd = {"w": torch.randn(2, 2)}
    torch.save(sd, d / "pytorch_model.bin")
    with open(d / "training_args.bin", "wb") as f:
        pickle.dump(TrainingArgs(), f)
    torch.save({"state": {0: {"exp_avg": torch.ones(2)}}, "param_groups": [{"lr": 0.1}]},
               d / "optimizer.bin")
    torch.save({"last_epoch": 3}, d / "scheduler.bin")
    torch.save({"python": 1}, d / "rng_state_0.pth")
    r = ModelReader(d)
    assert r.names() == ["w"] and torch.equal(r.get("w"), sd["w"])


def test_reference_model_without_config_is_a_plan_error(tiny):
    (tiny["base"] / "config.json").unlink()
    rec = recipe(tiny["root"], tiny["base"], tiny["ft"])
    with pytest.raises(PlanError) as e:
        kinmerge.merge(rec, tiny["root"] / "out")
    assert (f"model {tiny['base']} has no config.json, and the merged model takes its config "
            "from it (the base_model, else the first model listed): add the model's "
            "config.json to its folder") in e.value.problems
    assert not (tiny["root"] / "out").exists()
    assert_clean_failure(cli("validate", rec), "has no config.json")


def test_layer_count_in_config_is_checked_against_the_tensors(tiny):
    cfg = json.loads((tiny["ft"] / "config.json").read_text())
    (tiny["ft"] / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 4}))
    rec = recipe(tiny["root"], tiny["base"], tiny["ft"])
    with pytest.raises(PlanError) as e:
        kinmerge.make_plan(rec)
    assert e.value.problems == [
        f"model {tiny['ft']}: config.json says num_hidden_layers = 4, its tensors hold 2 "
        "layers (model.layers.0 to model.layers.1); fix its config.json or re-download it"]
    assert_clean_failure(cli("plan", rec), "config.json says num_hidden_layers = 4")
    # a hole in the stack is named too
    sd = load_file(tiny["base"] / "model.safetensors")
    synthetic_llama(tiny["root"] / "holed", layers=3, hidden=8, intermediate=8, vocab=8)
    holed = load_file(tiny["root"] / "holed" / "model.safetensors")
    save_file({k: v for k, v in holed.items() if ".layers.1." not in k},
              tiny["root"] / "holed" / "model.safetensors")
    with pytest.raises(PlanError, match=r"num_hidden_layers = 3, its tensors hold layers "
                                        r"0, 2 \(missing: 1\)"):
        holed = tiny["root"] / "holed"
        kinmerge.make_plan(recipe(tiny["root"], holed, holed, method="linear", name="h.yml"))
    assert sd  # the base itself stays valid


# --- 10.10: the pickle refusal is kinmerge's own message --------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_pickle_refusal_message_is_kinmerge_own(tmp_path, monkeypatch, fmt):
    monkeypatch.chdir(tmp_path)
    d = write_code_payload(tmp_path / "evil", fmt)
    with pytest.raises(UnsafeCheckpointError) as e:
        ModelReader(d)
    assert e.value.what.startswith("refused to unpickle a checkpoint that holds more than "
                                   "plain tensors: loading it could run code")
    if fmt == "torch-zip":  # torch names the blocked global; a protocol-4 pickle fails earlier
        assert e.value.what.endswith("(it references posix.system)")
    assert "weights_only" not in e.value.message and "weights_only" not in str(e.value)
    assert e.value.__cause__ is None and e.value.__suppress_context__
    r = cli("merge", recipe(tmp_path, d, d, method="linear"), tmp_path / "out")
    assert_clean_failure(r, "refused to unpickle")
    assert "weights_only" not in r.output and not (tmp_path / "PWNED").exists()


def test_kinmerge_yaml_and_kinship_report_bad_models_cleanly(tiny):
    (tiny["ft"] / "config.json").write_text("[]")
    rec = recipe(tiny["root"], tiny["base"], tiny["ft"])
    assert_clean_failure(cli(rec, tiny["root"] / "out", prog=kinmerge_yaml),
                         "config.json holds a JSON list, not an object")
    assert_clean_failure(cli("kinship", tiny["ft"], tiny["ft"], "--base", tiny["base"]),
                         "config.json holds a JSON list, not an object")


def test_index_shard_that_is_a_folder_and_config_less_eval(tiny):
    d = shard_model(tiny["root"] / "m", {"x": "model-00001-of-00002.safetensors",
                                         "y": "model-00002-of-00002.safetensors"})
    (d / "model-00002-of-00002.safetensors").mkdir()
    with pytest.raises(ModelLoadError, match="weight file model-00002-of-00002.safetensors is "
                                             "a directory, not a regular file"):
        ModelReader(d)
    from kinmerge.evaluate.model import load_model
    (tiny["ft"] / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="config.json is missing or names no model_type"):
        load_model(tiny["ft"])


@pytest.mark.parametrize("method", ["task_arithmetic", "ties", "dare_ties", "della", "linear"])
def test_integer_and_bool_buffers_are_copied_not_merged(tmp_path, method):
    """A valid checkpoint may store masks and position ids: no traceback, no float mask."""
    for name, seed in (("b1", 0), ("b2", 1)):
        (tmp_path / name).mkdir()
        g = torch.Generator().manual_seed(seed)
        save_file({"model.layers.0.w": torch.randn(4, generator=g),
                   "model.layers.0.mask": torch.tensor([True, False]),
                   "model.pos": torch.arange(4) + seed}, tmp_path / name / "model.safetensors")
        (tmp_path / name / "config.json").write_text('{"num_hidden_layers": 1}')
    from kinmerge.methods import get_method
    per = {p.name: 0.5 for p in get_method(method).params if p.required and p.scope == "model"}
    r = {"merge_method": method, "base_model": str(tmp_path / "b1"), "dtype": "bfloat16",
         "models": [{"model": str(tmp_path / "b2"), "parameters": per}]}
    if method == "linear":
        r["models"].append({"model": str(tmp_path / "b1"), "parameters": per})
        del r["base_model"]
    merged = kinmerge.merge_to_memory(r, seed=0)
    assert merged.config["torch_dtype"] == "bfloat16"  # the buffers do not hide the dtype
    m = merged.tensors
    assert torch.equal(m["model.layers.0.mask"], torch.tensor([True, False]))
    assert m["model.pos"].dtype == torch.int64 and m["model.layers.0.w"].dtype == torch.bfloat16
    want = torch.arange(4) + (1 if method == "linear" else 0)  # the reference's own values
    assert torch.equal(m["model.pos"], want)


def test_weight_file_without_tensors_is_refused(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    save_file({}, d / "model.safetensors")
    with pytest.raises(ModelLoadError, match=r"the weight files hold no tensors "
                                             r"\(model.safetensors\)"):
        ModelReader(d)


def test_fifo_or_device_in_a_folder_handed_to_a_library(tiny):
    """The tokenizer load and push read whatever the folder holds: a FIFO would block them."""
    os.mkfifo(tiny["base"] / "special_tokens_map.json")
    msg = _no_hang(tokenizer, tiny["base"])
    assert "special_tokens_map.json is a FIFO (named pipe), not a regular file" in msg
    assert "is a FIFO (named pipe)" in _no_hang(prepare, tiny["base"])
    os.unlink(tiny["base"] / "special_tokens_map.json")
    try:
        os.mknod(tiny["base"] / "vocab.json", 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    except (PermissionError, OSError):
        pytest.skip("cannot create a device node here")
    with pytest.raises(ModelLoadError, match="vocab.json is a character device"):
        kinmerge.merge(recipe(tiny["root"], tiny["base"], tiny["ft"]), tiny["root"] / "out")


def test_corrupt_lineage_files_in_a_run_folder(tiny):
    run = tiny["root"] / "run"
    (run / "m1").mkdir(parents=True)
    (run / "m1" / "lineage.json").write_text('{"model": {"id": 3}}')
    assert_clean_failure(cli("lineage", "graph", run, "--out", tiny["root"] / "f.svg"),
                         "lineage.json is not a kinmerge lineage record")
    (run / "m1" / "lineage.json").unlink()
    (run / "family.json").write_text('{"not": "a list"}')
    assert_clean_failure(cli("lineage", "graph", run, "--out", tiny["root"] / "f.svg"),
                         "family.json is not a kinmerge lineage record")
    assert_clean_failure(cli("lineage", "show", tiny["base"]), "has no lineage.json")


def test_bin_index_naming_the_wrong_file(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    torch.save({"x": torch.ones(1)}, d / "pytorch_model-00001-of-00002.bin")
    torch.save({"y": torch.ones(1)}, d / "pytorch_model-00002-of-00002.bin")
    (d / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": {
        "x": "pytorch_model-00002-of-00002.bin", "y": "pytorch_model-00002-of-00002.bin"}}))
    r = ModelReader(d)
    assert torch.equal(r.get("y"), torch.ones(1))
    with pytest.raises(ModelLoadError, match="tensor 'x' is listed in pytorch_model.bin.index"
                                             ".json under pytorch_model-00002-of-00002.bin, "
                                             "which does not hold it"):
        r.shape("x")


def test_corrupt_zoo_manifest_for_eval(tiny):
    zoo = tiny["root"] / "zoo"
    zoo.mkdir()
    (zoo / "zoo.json").write_text('{"skills": [1, 2]}')
    assert_clean_failure(cli("eval", tiny["base"], "--zoo", zoo),
                         "holds no readable zoo manifest")  # read_manifest's, as everywhere


def test_model_safetensors_beside_adapter_and_consolidated_files(tmp_path):
    """transformers loads model.safetensors alone; the other files must not join in."""
    d = tmp_path / "m"
    d.mkdir()
    save_file({"w": torch.ones(2)}, d / "model.safetensors")
    save_file({"w": torch.zeros(2)}, d / "consolidated.safetensors")
    save_file({"base_model.model.w.lora_A.weight": torch.ones(1)},
              d / "adapter_model.safetensors")
    r = ModelReader(d)
    assert r.names() == ["w"] and torch.equal(r.get("w"), torch.ones(2))
    (d / "model.safetensors").unlink()  # other names are still found, and clashes named
    save_file({"w": torch.zeros(2)}, d / "weights.safetensors")
    with pytest.raises(ModelLoadError, match="tensor 'w' is stored twice, in "
                                             "consolidated.safetensors and weights.safetensors"):
        ModelReader(d)
