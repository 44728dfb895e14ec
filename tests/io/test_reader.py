"""Reading models: safetensors (single, sharded), safe .bin, corrupt files, the hub cache."""
import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from kinmerge.errors import ModelLoadError, UnsafeCheckpointError
from kinmerge.io.reader import ModelReader
from kinmerge.io.safetensors_file import header_bytes, read_header
from payload_kit import FORMATS, write_code_payload


def test_reads_what_safetensors_wrote(tmp_path):
    sd = {"a": torch.randn(3, 4), "b": torch.arange(6, dtype=torch.int64),
          "c": torch.randn(2).bfloat16(), "empty": torch.zeros(0, 3)}
    save_file(sd, tmp_path / "model.safetensors")
    r = ModelReader(tmp_path)
    assert r.names() == ["a", "b", "c", "empty"]
    for k, v in sd.items():
        assert torch.equal(r.get(k), v) and r.shape(k) == tuple(v.shape) and r.dtype(k) == v.dtype
    assert r.num_parameters() == 12 + 6 + 2


def test_sharded_with_index(tmp_path):
    save_file({"x": torch.ones(2)}, tmp_path / "model-00001-of-00002.safetensors")
    save_file({"y": torch.zeros(3)}, tmp_path / "model-00002-of-00002.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "x": "model-00001-of-00002.safetensors", "y": "model-00002-of-00002.safetensors"}}))
    r = ModelReader(tmp_path)
    assert r.names() == ["x", "y"] and r.shard("y") == "model-00002-of-00002.safetensors"


def test_missing_shard_is_named(tmp_path):
    save_file({"x": torch.ones(2)}, tmp_path / "model-00001-of-00002.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "x": "model-00001-of-00002.safetensors", "y": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(ModelLoadError, match="shard model-00002-of-00002.safetensors is listed"):
        ModelReader(tmp_path)


def test_safe_bin_checkpoint(tmp_path):
    sd = {"w": torch.randn(2, 2), "b": torch.randn(2)}
    torch.save(sd, tmp_path / "pytorch_model.bin")
    r = ModelReader(tmp_path)
    assert r.names() == ["b", "w"] and torch.equal(r.get("w"), sd["w"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_pickled_code_payload_is_refused_not_run(tmp_path, monkeypatch, fmt):
    monkeypatch.chdir(tmp_path)
    d = write_code_payload(tmp_path / "evil", fmt)
    with pytest.raises(UnsafeCheckpointError, match="refused to unpickle") as e:
        ModelReader(d)
    assert "pytorch_model.bin" in str(e.value) and "safetensors" in e.value.fix
    assert not (tmp_path / "PWNED").exists()


def test_truncated_safetensors(tmp_path):
    save_file({"a": torch.randn(100)}, tmp_path / "model.safetensors")
    f = tmp_path / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-50])
    with pytest.raises(ModelLoadError, match="corrupt or truncated safetensors file: header "
                                             "promises 400 bytes of data, the file holds 350"):
        ModelReader(tmp_path)


@pytest.mark.parametrize("blob,why", [
    (b"\x01\x02", "too short for a header"),
    (struct.pack("<Q", 10**6) + b"{}", "header length 1000000 does not fit"),
    (struct.pack("<Q", 4) + b"nope", "header is not valid JSON"),
    (header_bytes([("a", torch.float32, (2,))])[:8 + 40] + b"", "does not fit"),
])
def test_corrupt_headers(tmp_path, blob, why):
    f = tmp_path / "model.safetensors"
    f.write_bytes(blob)
    with pytest.raises(ModelLoadError, match=why):
        read_header(f)


def test_no_weights(tmp_path):
    with pytest.raises(ModelLoadError, match="no weights found"):
        ModelReader(tmp_path)


def test_missing_directory_message(tmp_path):
    with pytest.raises(ModelLoadError, match="no folder"):
        ModelReader(tmp_path / "nope")


def test_a_misspelt_local_folder_is_a_local_typo_not_a_download(tmp_path, monkeypatch):
    """`zoo/sorrt` beside a local zoo/ names the folder meant; no download is tried, even
    with the hub reachable (a download attempt would fail the test)."""
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    real = huggingface_hub.snapshot_download

    def no_network(*a, local_files_only=False, **kw):
        assert local_files_only, "a download was attempted"
        return real(*a, local_files_only=True, **kw)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zoo" / "sort").mkdir(parents=True)
    (tmp_path / "zoo" / "reverse").mkdir()
    with pytest.raises(ModelLoadError) as e:
        ModelReader("zoo/sorrt")
    assert e.value.what == ("model 'zoo/sorrt' not found: no folder zoo/sorrt "
                            "(did you mean zoo/sort?)")
    assert "./zoo/ exists" in e.value.fix and "hf download zoo/sorrt" in e.value.fix
    with pytest.raises(ModelLoadError) as e:  # a path-like name: the same local error
        ModelReader("./zoo/revrse")
    assert e.value.what.endswith("no folder ./zoo/revrse (did you mean zoo/reverse?)")
    with pytest.raises(ModelLoadError) as e:  # nothing close: no guess
        ModelReader("zoo/qqqqqqq")
    assert e.value.what == "model 'zoo/qqqqqqq' not found: no folder zoo/qqqqqqq"
    # the control: a real hub id whose org is also a local folder still loads from the cache
    make_cache(cache, "zoo/tiny", {"model.safetensors":
                                   lambda p: save_file({"w": torch.ones(2)}, p)})
    assert torch.equal(ModelReader("zoo/tiny").get("w"), torch.ones(2))


def make_cache(root, repo, files: dict, commit="a" * 40, ref="main"):
    """Lay out a huggingface_hub cache entry by hand: snapshots/<commit>, refs/<ref>."""
    d = root / f"models--{repo.replace('/', '--')}"
    snap = d / "snapshots" / commit
    snap.mkdir(parents=True)
    for name, writer in files.items():
        writer(snap / name)
    (d / "refs").mkdir(exist_ok=True)
    (d / "refs" / ref).write_text(commit)
    return snap


def test_hub_ids_resolve_through_the_local_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    w1, w2 = torch.ones(2), torch.zeros(2)
    make_cache(cache, "org/model", {"model.safetensors": lambda p: save_file({"w": w1}, p)})
    make_cache(cache, "org/model", {"model.safetensors": lambda p: save_file({"w": w2}, p)},
               commit="b" * 40, ref="v2")
    assert torch.equal(ModelReader("org/model").get("w"), w1)
    assert torch.equal(ModelReader("org/model@v2").get("w"), w2)
    assert torch.equal(ModelReader("org/model@" + "b" * 40).get("w"), w2)
    with pytest.raises(ModelLoadError, match="'org/other' is not in the Hugging Face cache"):
        ModelReader("org/other")
