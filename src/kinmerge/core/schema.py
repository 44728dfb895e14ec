"""The recipe's schema: mergekit's YAML keys as frozen pydantic models, nothing more.

Parsing and checking (`load_recipe`) live in `kinmerge.core.recipe`; the static checks
against the method registry (`kinmerge.core.validate`) read these types.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from kinmerge.io.configfile import Seed
from kinmerge.tokenizer.spec import TokenizerBlock

# a number written as a string: mergekit reads these as numbers (YAML 1.1 leaves `1e-5`,
# without a dot, a string; quoted numbers are strings too)
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_str(v: Any) -> Any:
    """Model references may be given as Paths from Python; the recipe stores strings."""
    return str(v) if isinstance(v, Path) else v


def _parameters(v: Any) -> Any:
    """`parameters:` with no value is no parameters (as in mergekit); numbers written as
    strings become numbers, in gradients and filter lists too."""
    if v is None:
        return {}
    return {k: _numbers(x) for k, x in v.items()} if isinstance(v, dict) else v


def _numbers(x: Any) -> Any:
    if isinstance(x, str) and _NUMBER.fullmatch(x.strip()):
        return float(x)
    if isinstance(x, list):
        return [_numbers(e) for e in x]
    if isinstance(x, dict) and "value" in x:
        return {**x, "value": _numbers(x["value"])}
    return x


class InputModel(_Strict):
    """One entry of `models:`."""

    model: str
    parameters: dict[str, Any] = {}

    _path = field_validator("model", mode="before")(_as_str)
    _params = field_validator("parameters", mode="before")(_parameters)


class SliceSource(_Strict):
    """One source of a slice: a model and the half-open layer range [a, b) it contributes."""

    model: str
    layer_range: tuple[int, int]
    parameters: dict[str, Any] = {}

    _path = field_validator("model", mode="before")(_as_str)
    _params = field_validator("parameters", mode="before")(_parameters)


class Slice(_Strict):
    sources: list[SliceSource]
    parameters: dict[str, Any] = {}
    # mergekit's slice keys: a per-slice base (only the recipe's own is supported) and
    # `residual_weight`, which mergekit 0.1.5 declares and never reads
    base_model: str | None = None
    residual_weight: float | None = None

    _path = field_validator("base_model", mode="before")(_as_str)

    _params = field_validator("parameters", mode="before")(_parameters)


class KinmergeOptions(_Strict):
    """kinmerge's own recipe options, under `kinmerge:` (mergekit ignores the block)."""

    # how TIES/breadcrumbs rank equal magnitudes: "stable" (earliest first, fast) or
    # "mergekit" (torch's unstable sort, as stock mergekit: reproduces its bytes)
    topk: Literal["stable", "mergekit"] = "stable"


class Recipe(_Strict):
    """A merge recipe, as mergekit users write it (plus kinmerge's optional `seed`)."""

    merge_method: str
    base_model: str | None = None
    models: list[InputModel] | None = None
    slices: list[Slice] | None = None
    parameters: dict[str, Any] = {}
    dtype: str | None = None
    out_dtype: str | None = None
    tokenizer_source: str | None = None
    tokenizer: TokenizerBlock | None = None  # mergekit's block: source, tokens, pad_to_multiple_of
    chat_template: str | None = None
    # mergekit's per-module layout of multi-module (vision-language) models: read so that it
    # is refused with its reason (core.validate), not as an unknown key
    modules: dict[str, Any] | None = None
    # kinmerge: the seed of stochastic methods (DARE), 0 to 2**32-1 like every config's seed
    # (mergekit hands its seed to numpy, which takes no other)
    seed: Seed | None = None
    kinmerge: KinmergeOptions | None = None

    _path = field_validator("base_model", mode="before")(_as_str)
    _params = field_validator("parameters", mode="before")(_parameters)

    def model_refs(self) -> list[str]:
        """Every model the recipe names, base first, each once, in recipe order."""
        refs = [self.base_model] if self.base_model else []
        refs += [m.model for m in self.models or []]
        refs += [s.model for sl in self.slices or [] for s in sl.sources]
        return list(dict.fromkeys(refs))

    def to_yaml(self) -> str:
        data = self.model_dump(exclude_none=True, exclude_defaults=True)
        data["merge_method"] = self.merge_method
        return yaml.safe_dump(data, sort_keys=False)
