"""The JSON files of a model folder, checked at the boundary: config.json and the shard
indexes (`model.safetensors.index.json`, `pytorch_model.bin.index.json`).

Anything that is not what the format promises (a list for an object, bytes that are not
UTF-8, a folder or FIFO where the file should be, an index entry leaving the folder, a layer
count that is a string) is one ModelLoadError here, not a TypeError deep in a merge.
"""
from __future__ import annotations

import json
from pathlib import Path

from kinmerge.errors import ModelLoadError
from kinmerge.io.safe_path import inside, present, regular_file, unreadable

MAX_JSON = 64 * 2**20  # an index of a million tensors is ~60 MB


def _count(v: object) -> bool:
    return type(v) is int and v >= 0


# the keys kinmerge itself reads from config.json, with the type it relies on
CONFIG_TYPES = {
    **{k: (_count, "a non-negative integer") for k in (
        "num_hidden_layers", "n_layer", "num_layers", "n_layers", "vocab_size")},
    "tie_word_embeddings": (lambda v: isinstance(v, bool), "true or false"),
    "model_type": (lambda v: isinstance(v, str), "a string"),
    "torch_dtype": (lambda v: isinstance(v, str), "a string"),
    "dtype": (lambda v: isinstance(v, str), "a string"),
    "architectures": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                      "a list of strings"),
}


def read_config(model_dir: Path) -> dict:
    """The model's config.json as a dict; {} when there is none. Anything else that is not a
    readable UTF-8 JSON object (a list, a folder, binary) is a ModelLoadError."""
    f = model_dir / "config.json"
    if not present(f):
        return {}
    inside(model_dir, "config.json", what="config.json")
    size = regular_file(f, what="config.json").st_size
    fix = "repair or re-download config.json"
    if size > MAX_JSON:
        raise ModelLoadError(f"config.json is {size} bytes, more than a config holds",
                             where=str(f), fix=fix)
    try:
        config = json.loads(f.read_bytes().decode("utf-8"))
    except OSError as e:
        raise unreadable(f, e, what="config.json") from e
    except UnicodeDecodeError as e:
        raise ModelLoadError(f"config.json is not UTF-8 text (byte {e.start})", where=str(f),
                             fix=fix) from None
    except (ValueError, RecursionError) as e:
        raise ModelLoadError(f"config.json is not valid JSON: {str(e)[:200]}", where=str(f),
                             fix=fix) from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"config.json holds a JSON {_json_kind(config)}, not an object",
                             where=str(f), fix=fix)
    for key, (ok, want) in CONFIG_TYPES.items():
        if key in config and config[key] is not None and not ok(config[key]):
            raise ModelLoadError(f"config.json key {key!r} is a JSON "
                                 f"{_json_kind(config[key])}, expected {want}", where=str(f),
                                 fix=fix)
    return config


def weight_map(model_dir: Path, index_name: str) -> dict[str, Path]:
    """An index file's `weight_map`, every entry checked: tensor name -> a file inside the
    folder. Refused whole, before any tensor is read, if one entry is malformed or escapes."""
    index = inside(model_dir, index_name, what="index file")
    regular_file(index, what="index file")
    bad = ModelLoadError(f"{index_name} has no valid weight_map (an object of tensor name -> "
                         "file name)", where=str(index), fix="re-download the model")
    try:
        if index.stat().st_size > MAX_JSON:
            raise bad
        raw = json.loads(index.read_bytes().decode("utf-8"))
    except OSError as e:
        raise unreadable(index, e, what="index file") from e
    except (ValueError, RecursionError):  # not UTF-8, not JSON
        raise bad from None
    wm = raw.get("weight_map") if isinstance(raw, dict) else None
    if not isinstance(wm, dict):
        raise bad
    out, checked = {}, {}  # thousands of tensors name a handful of shards: check each once
    for name, file in wm.items():
        if not isinstance(file, str):
            raise ModelLoadError(f"{index_name} maps tensor {name[:200]!r} to "
                                 f"{str(file)[:80]}, not a file name", where=str(index),
                                 fix="re-download the model")
        if file not in checked:
            checked[file] = inside(model_dir, file, what="shard")
        out[name] = checked[file]
    return out


def _json_kind(v: object) -> str:
    return {dict: "object", list: "list", str: "string", int: "number", float: "number",
            bool: "boolean", type(None): "null"}.get(type(v), type(v).__name__)
