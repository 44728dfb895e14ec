"""The recipe's `tokenizer:` block, as mergekit 0.1.5 reads it (pydantic: this is the edge).

    tokenizer:
      source: union            # union (default) | base | a model of the recipe
      pad_to_multiple_of: 64   # optional: round the vocabulary rows up
      tokens:
        <|im_start|>:
          source: path/to/chat-model          # that model's row of this token
        <|im_end|>:
          source: {kind: model_token, model: path/to/chat-model, token: </s>}
          force: true                          # every input takes it, even where it has one
        <pad>:
          source: {kind: zero}
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from kinmerge.errors import short_repr

# the vocabulary is rounded up to a multiple of this: more than a few thousand rows of
# padding is never meant (mergekit users write 8, 64 or 128), and 10**12 rows cannot be built
MAX_PAD_TO_MULTIPLE_OF = 65536


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_str(v: Any) -> Any:
    return str(v) if isinstance(v, Path) else v


class ModelToken(_Strict):
    """The row of one token (by text or id) of one model's own vocabulary."""

    kind: Literal["model_token"]
    model: str
    token: str | None = None
    token_id: int | None = None

    _path = field_validator("model", mode="before")(_as_str)

    @model_validator(mode="after")
    def _one_of(self) -> "ModelToken":
        if (self.token is None) == (self.token_id is None):
            raise ValueError("give exactly one of `token` and `token_id`")
        return self


class ZeroEmbedding(_Strict):
    kind: Literal["zero"]


class TokenEmbedding(_Strict):
    """Where one output token's row comes from; `force` applies it to every input."""

    source: ModelToken | ZeroEmbedding | str | None = None
    force: bool = False

    _path = field_validator("source", mode="before")(_as_str)


class TokenizerBlock(_Strict):
    source: str = "union"
    tokens: dict[str, TokenEmbedding] | None = None
    pad_to_multiple_of: int | None = None

    _path = field_validator("source", mode="before")(_as_str)


def source_model(e: TokenEmbedding) -> str | None:
    """The model a token's row comes from, if any (a zero embedding has none)."""
    if isinstance(e.source, ModelToken):
        return e.source.model
    return e.source if isinstance(e.source, str) else None


def effective(tokenizer: TokenizerBlock | None, tokenizer_source: str | None
              ) -> TokenizerBlock | None:
    """The one tokenizer setting of a recipe: the block, or `tokenizer_source` as a block."""
    if tokenizer is not None:
        return tokenizer
    return TokenizerBlock(source=tokenizer_source) if tokenizer_source else None


def problems(tokenizer: TokenizerBlock | None, tokenizer_source: str | None,
             base_model: str | None, models: list[str]) -> list[str]:
    """Everything wrong with a recipe's tokenizer settings, seen without opening a model."""
    if tokenizer is not None and tokenizer_source is not None:
        return ["give either `tokenizer_source` or a `tokenizer:` block, not both "
                "(the block's `source` replaces tokenizer_source)"]
    spec = effective(tokenizer, tokenizer_source)
    if spec is None:
        return []
    key = "tokenizer.source" if tokenizer is not None else "tokenizer_source"
    out = []
    if spec.source == "base" and not base_model:
        out.append(f"{key}: 'base' needs base_model")
    elif spec.source not in ("base", "union") and spec.source not in models:
        out.append(f"{key} {spec.source!r} is neither 'union', 'base' nor a model of the recipe")
    pad = spec.pad_to_multiple_of
    if pad is not None and not 1 <= pad <= MAX_PAD_TO_MULTIPLE_OF:
        out.append(f"tokenizer.pad_to_multiple_of must be a whole number in [1, "
                   f"{MAX_PAD_TO_MULTIPLE_OF}], got {short_repr(pad)}")
    for tok, e in (spec.tokens or {}).items():
        m = source_model(e)
        if m is not None and m not in models:
            out.append(f"tokenizer.tokens[{tok!r}].source: {m!r} is not a model of the recipe")
        if e.force and e.source is None:
            out.append(f"tokenizer.tokens[{tok!r}]: `force` needs a `source`")
    return out
