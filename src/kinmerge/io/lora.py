"""LoRA adapters applied on the fly: `model: base_model+path/to/lora`, as mergekit reads it.

A PEFT adapter directory (`adapter_config.json` + `adapter_model.safetensors`) is parsed here,
without peft. `LoraModelReader` is a ModelReader of the base whose `get` returns each tensor
with its adapter applied, one tensor at a time, so plan and execute see the merged weights
and never a second copy of the model:

    W' = W + s · B @ A        (transposed when fan_in_fan_out; for embeddings (B @ A)ᵀ)
    s  = alpha / r            (alpha / sqrt(r) with use_rslora; rank_pattern / alpha_pattern
                               override r and alpha per module)

computed as peft's `merge_and_unload` does on CPU: B @ A in float32, scaled, added to W in
float32 and rounded once to W's dtype (an embedding's update is rounded to W's dtype first).
Tensors the adapter stores whole (`modules_to_save`, an embedding's `base_layer`) replace the
base's.

The adapter is checked as peft checks it when it loads one, before any tensor is merged:
adapter_config.json through its schema (kinmerge.io.adapter_config); every factor 2-D, lora_A
and lora_B of one rank, the rank the config declares for that module (peft refuses a
mismatch; scaling by a wrong r would silently shrink or blow up the update), and B @ A the
shape of the weight it updates. A pickled adapter_model.bin goes through the models'
weights-only unpickling and its refusal (kinmerge.io.reader.load_pickled).

>>> r = LoraModelReader("models/llama+adapters/chat-lora")     # doctest: +SKIP
>>> r.get("model.layers.0.self_attn.q_proj.weight")            # W + s·BA  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kinmerge.errors import ModelLoadError
from kinmerge.io.adapter_config import AdapterConfig, read_adapter_config
from kinmerge.io.dtype import Dtype, as_dtype
from kinmerge.io.hub import resolve_model
from kinmerge.io.reader import ModelReader, load_pickled
from kinmerge.io.refs import split_lora
from kinmerge.io.safe_path import inside, present, regular_file
from kinmerge.io.safetensors_file import TensorInfo, read_header, read_tensor

if TYPE_CHECKING:  # an adapter is checked from its header; tensors (get) import torch
    import torch
log = logging.getLogger(__name__)

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
    # the weights: a safetensors file's checked header, or a pickled file's tensors
    infos: dict[str, TensorInfo] = field(default_factory=dict)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.infos[key].shape if key in self.infos else self.tensors[key].shape)

    def get(self, key: str) -> torch.Tensor:
        return read_tensor(self.infos[key]) if key in self.infos else self.tensors[key]

    def dtype(self, key: str) -> Dtype:
        return self.infos[key].dtype if key in self.infos else as_dtype(self.tensors[key].dtype)

    def keys(self) -> list[str]:
        return list(self.infos or self.tensors)


def read_adapter(ref: str) -> Adapter:
    """Parse and check a PEFT LoRA adapter directory (local or a hub id)."""
    path = resolve_model(ref)
    if not present(path / "adapter_config.json"):  # a FIFO or a link is refused below
        raise ModelLoadError("no adapter_config.json: not a PEFT adapter", where=str(path),
                             fix="point after the `+` at a directory saved by peft")
    cfg = read_adapter_config(inside(path, "adapter_config.json", what="adapter_config.json"))
    _check_supported(cfg, path)
    name = next((f for f in ADAPTER_FILES if (path / f).is_file()), None)
    if name is None:
        raise ModelLoadError("no adapter_model.safetensors in the adapter", where=str(path),
                             fix="save the adapter with peft's save_pretrained")
    file = inside(path, name, what="adapter weights")  # no link out of the adapter folder
    regular_file(file, what="adapter weights")
    if file.suffix == ".safetensors":
        adapter = Adapter(path, file, cfg.fan_in_fan_out, {}, {}, infos=read_header(file)[0])
    else:  # the models' pickle refusal, in kinmerge's words
        adapter = Adapter(path, file, cfg.fan_in_fan_out, {}, {},
                          tensors=load_pickled(file, what="adapter weights"))
    keys = adapter.keys()
    for key in keys:
        name = key.removeprefix(PREFIX)
        if m := re.fullmatch(r"(.+)\.lora_A(?:\.[^.]+)?\.weight", name):
            adapter.pairs[f"{m[1]}.weight"] = _pair(cfg, adapter, m[1], key, embedding=False)
        elif m := re.fullmatch(r"(.+)\.lora_embedding_A(?:\.[^.]+)?", name):
            adapter.pairs[f"{m[1]}.weight"] = _pair(cfg, adapter, m[1], key, embedding=True)
        elif ".lora_" in name:
            continue  # lora_B (and its bias) are found from lora_A
        else:  # modules_to_save, or an embedding's saved base layer
            adapter.whole[name.replace(".base_layer.", ".")
                          .replace(".modules_to_save.", ".")] = key
    _check_targets(cfg, adapter)
    return adapter


def _check_supported(cfg: AdapterConfig, path: Path) -> None:
    kind = cfg.peft_type
    why = (f"peft_type {kind[:40]}" if kind != "LORA" else
           "DoRA (use_dora)" if cfg.use_dora else None)
    if why:
        raise ModelLoadError(f"{why} adapters are not supported, only plain LoRA",
                             where=str(path), fix="merge it with peft's merge_and_unload "
                             "first and use the merged model")


def _pair(cfg: AdapterConfig, adapter: Adapter, module: str, a_key: str,
          embedding: bool) -> LoraPair:
    """One module's factors, checked as peft checks them on load: both present and 2-D,
    of one rank, the rank the config declares for the module."""
    b_key = a_key.replace("lora_embedding_A", "lora_embedding_B").replace("lora_A", "lora_B")
    bias = b_key.removesuffix(".weight") + ".bias" if not embedding else None
    keys = set(adapter.keys())

    def bad(what: str, fix: str) -> ModelLoadError:
        return ModelLoadError(f"LoRA factors of {module[:200]}: {what}", where=str(adapter.file),
                              fix=fix)

    if b_key not in keys:
        raise bad(f"{a_key[:200]} has no {b_key.rsplit('.', 2)[-2]} beside it",
                  "re-save the adapter with peft (every lora_A needs its lora_B)")
    a, b = adapter.shape(a_key), adapter.shape(b_key)
    if len(a) != 2 or len(b) != 2:
        raise bad(f"factors must be 2-D matrices, got lora_A of shape {list(a)} and lora_B "
                  f"of shape {list(b)} ({a_key[:200]})", "re-save the adapter with peft")
    declared = cfg.rank(module)
    if a[0] != b[1] or a[0] != declared:
        raise bad(f"lora_A {list(a)} and lora_B {list(b)} do not both have the rank "
                  f"{declared} that adapter_config.json declares for this module "
                  "(r or rank_pattern); peft refuses such an adapter",
                  "use the adapter_config.json saved with these weights")
    if bias in keys and adapter.shape(bias) != (b[0],):
        raise bad(f"lora_B's bias has shape {list(adapter.shape(bias))}, expected [{b[0]}]",
                  "re-save the adapter with peft")
    return LoraPair(a_key, b_key, cfg.scale(module), embedding, bias if bias in keys else None)


def _check_targets(cfg: AdapterConfig, adapter: Adapter) -> None:
    """target_modules naming modules the file has no factors for: a warning, not an error.

    peft itself accepts a target list some of whose names match no module (configs often
    list every projection of an architecture family), so refusing would refuse adapters
    peft loads; but it can also mean the weights are not the ones the config was saved with,
    so it is said.
    """
    modules = [n.removesuffix(".weight") for n in adapter.pairs]
    missing = cfg.untargeted(modules + [n.removesuffix(".weight") for n in adapter.whole])
    if missing:
        log.warning("adapter_config.json's target_modules name %d module(s) the adapter holds "
                    "no LoRA factors for: %s (adapter %s); only the modules with factors are "
                    "changed", len(missing), ", ".join(m[:80] for m in missing[:10]),
                    adapter.path)


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
        for name, pair in self.adapter.pairs.items():
            self._check_fits(name, pair)

    def _check_fits(self, name: str, pair: LoraPair) -> None:
        """B @ A (transposed for embeddings and fan_in_fan_out) has the weight's shape."""
        (out, _), (_, inp) = self.adapter.shape(pair.b), self.adapter.shape(pair.a)
        delta = (inp, out) if pair.embedding or self.adapter.fan_in_fan_out else (out, inp)
        want = self.shape(name)
        if delta != tuple(want):
            raise ModelLoadError(
                f"the LoRA update of {name[:200]} (lora_B {list(self.adapter.shape(pair.b))} "
                f"@ lora_A {list(self.adapter.shape(pair.a))} = {list(delta)}) does not fit "
                f"the weight's shape {list(want)}", where=str(self.adapter.file),
                fix="use the base model the adapter was trained on")

    def _raw(self, key: str) -> torch.Tensor:
        return self.adapter.get(key)

    def names(self) -> list[str]:
        return sorted(set(super().names()) | set(self.adapter.whole))

    def __contains__(self, name: str) -> bool:
        return name in self.adapter.whole or super().__contains__(name)

    def shape(self, name: str) -> tuple[int, ...]:
        if name in self.adapter.whole:
            return self.adapter.shape(self.adapter.whole[name])
        return super().shape(name)

    def dtype(self, name: str) -> Dtype:
        if super().__contains__(name):  # peft loads saved modules into the model's dtype
            return super().dtype(name)
        return self.adapter.dtype(self.adapter.whole[name])

    def shard(self, name: str) -> str:
        return "adapter" if name in self.adapter.whole and not super().__contains__(name) \
            else super().shard(name)

    def get(self, name: str) -> torch.Tensor:
        if name in self.adapter.whole:
            w = self._raw(self.adapter.whole[name]).to(self.dtype(name).torch)
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
    import torch

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


def check_models(refs: list[str], where: str) -> None:
    """Every model of a config opens (headers only, `base+lora` included): a missing or
    broken one is named before a search starts, not as an error deep inside it."""
    for ref in dict.fromkeys(r for r in refs if r):
        try:
            open_reader(ref).close()
        except ModelLoadError as e:
            raise ModelLoadError(f"{where}: {e.what}", where=e.where, fix=e.fix) from None
