"""LoRA adapters applied on the fly: `model: base_model+path/to/lora`, as mergekit reads it.

A PEFT adapter directory (`adapter_config.json` + `adapter_model.safetensors`) is parsed here,
without peft. `LoraModelReader` is a ModelReader of the base whose `get` returns each tensor
with its adapter applied, one tensor at a time, so plan and execute see the merged weights
and never a second copy of the model:

    W' = W + s · B @ A        (transposed when fan_in_fan_out; for embeddings (B @ A)ᵀ)
    s  = alpha / r            (alpha / sqrt(r) with use_rslora; rank_pattern / alpha_pattern
                               override r and alpha per module)

computed as peft's `merge_and_unload` does on CPU: B @ A in float32, scaled, added to W in
float32 and rounded once to W's dtype (an embedding's update is rounded to W's dtype first). Tensors the adapter stores whole (`modules_to_save`,
an embedding's `base_layer`) replace the base's.

>>> r = LoraModelReader("models/llama+adapters/chat-lora")     # doctest: +SKIP
>>> r.get("model.layers.0.self_attn.q_proj.weight")            # W + s·BA  # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from kinmerge.errors import ModelLoadError
from kinmerge.io.hub import resolve_model
from kinmerge.io.reader import ModelReader
from kinmerge.io.refs import split_lora
from kinmerge.io.safe_path import inside, regular_file

PREFIX = "base_model.model."
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def open_reader(ref: str | os.PathLike) -> ModelReader:
    """A reader of `ref`, with its LoRA applied when `ref` is `base+lora`."""
    return LoraModelReader(ref) if split_lora(ref)[1] else ModelReader(ref)


@dataclass(frozen=True)
class LoraPair:
    """The low-rank factors of one target module."""

    a: str  # adapter key of A: (r, in) for linears, (r, vocab) for embeddings
    b: str  # adapter key of B: (out, r) for linears, (hidden, r) for embeddings
    scale: float
    embedding: bool
    bias: str | None = None  # lora_B's bias (lora_bias)


@dataclass(frozen=True)
class Adapter:
    path: Path
    file: Path
    fan_in_fan_out: bool
    pairs: dict[str, LoraPair]  # base tensor name -> its factors
    whole: dict[str, str]  # base tensor name -> adapter key of a tensor that replaces it


def read_adapter(ref: str) -> Adapter:
    """Parse a PEFT LoRA adapter directory (local or a hub id)."""
    path = resolve_model(ref)
    if not (path / "adapter_config.json").is_file():
        raise ModelLoadError("no adapter_config.json: not a PEFT adapter", where=str(path),
                             fix="point after the `+` at a directory saved by peft")
    cfg = _read_config(inside(path, "adapter_config.json", what="adapter_config.json"))
    _check_supported(cfg, path)
    name = next((f for f in ADAPTER_FILES if (path / f).is_file()), None)
    if name is None:
        raise ModelLoadError("no adapter_model.safetensors in the adapter", where=str(path),
                             fix="save the adapter with peft's save_pretrained")
    file = inside(path, name, what="adapter weights")  # no link out of the adapter folder
    regular_file(file, what="adapter weights")
    keys = _adapter_keys(file)
    pairs, whole = {}, {}
    for key in keys:
        name = key.removeprefix(PREFIX)
        if m := re.fullmatch(r"(.+)\.lora_A(?:\.[^.]+)?\.weight", name):
            pairs[m[1]] = _pair(cfg, m[1], key, keys, embedding=False)
        elif m := re.fullmatch(r"(.+)\.lora_embedding_A(?:\.[^.]+)?", name):
            pairs[m[1]] = _pair(cfg, m[1], key, keys, embedding=True)
        elif ".lora_" in name:
            continue  # lora_B (and its bias) are found from lora_A
        else:  # modules_to_save, or an embedding's saved base layer
            whole[name.replace(".base_layer.", ".").replace(".modules_to_save.", ".")] = key
    return Adapter(path, file, bool(cfg.get("fan_in_fan_out")),
                   {f"{mod}.weight": p for mod, p in pairs.items()}, whole)


def _read_config(f: Path) -> dict:
    regular_file(f, what="adapter_config.json")
    try:
        cfg = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"adapter_config.json is not valid JSON: {e}", where=str(f),
                             fix="repair or re-download the adapter") from e
    if not isinstance(cfg, dict):
        raise ModelLoadError("adapter_config.json is not a JSON object", where=str(f),
                             fix="repair or re-download the adapter")
    return cfg


def _check_supported(cfg: dict, path: Path) -> None:
    kind = cfg.get("peft_type", "LORA")
    why = (f"peft_type {kind}" if kind != "LORA" else
           "DoRA (use_dora)" if cfg.get("use_dora") else None)
    if why:
        raise ModelLoadError(f"{why} adapters are not supported, only plain LoRA",
                             where=str(path), fix="merge it with peft's merge_and_unload "
                             "first and use the merged model")


def _adapter_keys(file: Path) -> list[str]:
    if file.suffix == ".safetensors":
        with safe_open(file, "pt") as f:
            return list(f.keys())
    return list(torch.load(file, map_location="cpu", weights_only=True))


def _pair(cfg: dict, module: str, a_key: str, keys: list[str], embedding: bool) -> LoraPair:
    b_key = a_key.replace("lora_embedding_A", "lora_embedding_B").replace("lora_A", "lora_B")
    bias = b_key.removesuffix(".weight") + ".bias" if not embedding else None
    r = _pattern(cfg.get("rank_pattern") or {}, module, cfg.get("r", 8))
    alpha = _pattern(cfg.get("alpha_pattern") or {}, module, cfg.get("lora_alpha", 8))
    scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
    return LoraPair(a_key, b_key, scale, embedding, bias if bias in keys else None)


def _pattern(patterns: dict, module: str, default):
    """peft's rule: the first pattern that matches the end of the module name (at a dot)."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


class LoraModelReader(ModelReader):
    """A base model seen through a LoRA adapter: the same names, merged tensors."""

    def __init__(self, ref: str | os.PathLike):
        base, lora = split_lora(ref)
        super().__init__(base)
        self.ref = str(ref)
        self.adapter = read_adapter(lora)
        self._flat: tuple[str, torch.Tensor] | None = None
        missing = sorted(n for n in self.adapter.pairs if not ModelReader.__contains__(self, n))
        if missing:
            raise ModelLoadError(f"the adapter targets {len(missing)} tensor(s) the model "
                                 f"lacks (first: {missing[0]})", where=str(self.adapter.path),
                             fix="use the base model the adapter was trained on")

    def _raw(self, key: str) -> torch.Tensor:
        f = self.adapter.file
        if f.suffix == ".safetensors":
            with safe_open(f, "pt") as st:
                return st.get_tensor(key)
        return torch.load(f, map_location="cpu", weights_only=True)[key]

    def names(self) -> list[str]:
        return sorted(set(super().names()) | set(self.adapter.whole))

    def __contains__(self, name: str) -> bool:
        return name in self.adapter.whole or super().__contains__(name)

    def shape(self, name: str) -> tuple[int, ...]:
        if name in self.adapter.whole:
            with safe_open(self.adapter.file, "pt") as st:
                return tuple(st.get_slice(self.adapter.whole[name]).get_shape())
        return super().shape(name)

    def dtype(self, name: str) -> torch.dtype:
        if super().__contains__(name):  # peft loads saved modules into the model's dtype
            return super().dtype(name)
        return self._raw(self.adapter.whole[name]).dtype

    def shard(self, name: str) -> str:
        return "adapter" if name in self.adapter.whole and not super().__contains__(name) \
            else super().shard(name)

    def get(self, name: str) -> torch.Tensor:
        if name in self.adapter.whole:
            w = self._raw(self.adapter.whole[name]).to(self.dtype(name))
        else:
            w = super().get(name)
        pair = self.adapter.pairs.get(name)
        if pair is not None:
            return apply_lora(w, self._raw(pair.a), self._raw(pair.b), pair.scale,
                              pair.embedding, self.adapter.fan_in_fan_out)
        owner = self.adapter.pairs.get(name.removesuffix(".bias") + ".weight")
        if name.endswith(".bias") and owner is not None and owner.bias:  # lora_bias
            return (w.float() + self._raw(owner.bias).float() * owner.scale).to(w.dtype)
        return w

    def read_flat(self, name: str, lo: int, hi: int,
                  into: bytearray | None = None) -> torch.Tensor:
        """Elements [lo, hi) of the merged tensor; the last tensor is kept, so streaming one
        tensor in chunks (kinship) merges it once, not once per chunk."""
        if self._flat is None or self._flat[0] != name:
            self._flat = None  # free the previous tensor first
            self._flat = (name, self.get(name).reshape(-1))
        return self._flat[1][lo:hi]

    def close(self) -> None:
        self._flat = None
        super().close()

    def __repr__(self) -> str:
        return f"LoraModelReader({self.ref!r})"


def apply_lora(w: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scale: float,
               embedding: bool = False, fan_in_fan_out: bool = False) -> torch.Tensor:
    """W + scale · B @ A, as peft merges on CPU: float32 product, one rounding to W's dtype.

    >>> w = torch.zeros(2, 3); a = torch.ones(1, 3); b = torch.tensor([[1.0], [2.0]])
    >>> apply_lora(w, a, b, 0.5).tolist()
    [[0.5, 0.5, 0.5], [1.0, 1.0, 1.0]]
    """
    delta = b.float() @ a.float()
    if embedding or fan_in_fan_out:
        delta = delta.T
    delta = delta * scale
    if delta.shape != w.shape:
        raise ModelLoadError(f"LoRA update of shape {list(delta.shape)} does not fit a weight "
                             f"of shape {list(w.shape)}", where="LoRA adapter",
                             fix="use the base model the adapter was trained on")
    if embedding:  # peft rounds an embedding's update to W's dtype before adding it
        return w + delta.to(w.dtype)
    return (w.float() + delta).to(w.dtype) if w.dtype != torch.float32 else w + delta
