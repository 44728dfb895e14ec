"""One model's vocabulary: token -> id, and its added tokens with their settings.

Read with the `tokenizers` library from `tokenizer.json`; a model with only a slow tokenizer
(`tokenizer.model`) is converted by transformers, as mergekit does. Tokens whose id is not a
row of the model's embedding (`vocab_size`) are left out: they have no embedding to merge.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from kinmerge.errors import ModelLoadError
from kinmerge.io.safe_path import inside, check_folder, regular_file

log = logging.getLogger(__name__)

VOCAB_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight",
                  "tok_embeddings.weight", "embed_in.weight", "embed_out.weight")


def is_vocab_tensor(name: str) -> bool:
    """Tensors whose dim 0 is the vocabulary (input embeddings and output heads)."""
    return name.startswith("lm_head.") or name.endswith(VOCAB_SUFFIXES)


@dataclass(frozen=True)
class AddedSpec:
    """An added token's settings, as tokenizers' AddedToken holds them."""

    content: str
    special: bool = False
    normalized: bool = True
    lstrip: bool = False
    rstrip: bool = False
    single_word: bool = False


@dataclass(frozen=True)
class Vocab:
    ids: dict[str, int]  # token -> row, only rows the embedding has
    added: tuple[tuple[int, AddedSpec], ...]  # (id, settings), id order
    rows: int  # the embedding's row count (config vocab_size)
    total: int  # tokens of the tokenizer, those beyond `rows` included


def has_tokenizer(path: Path) -> bool:
    return (path / "tokenizer.json").is_file() or (path / "tokenizer.model").is_file()


def load_backend(path: Path):
    """The `tokenizers.Tokenizer` of a model directory (a fast tokenizer)."""
    from tokenizers import Tokenizer

    if (path / "tokenizer.json").is_file():
        f = inside(path, "tokenizer.json", what="tokenizer.json")  # no link out of the folder
        regular_file(f, what="tokenizer.json")
        try:
            return Tokenizer.from_file(str(f))
        except Exception as e:
            raise ModelLoadError(f"cannot read tokenizer.json: {e}", where=str(path),
                                 fix="repair or re-download the tokenizer files") from e
    check_folder(path)  # transformers reads whatever the folder holds
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(path), use_fast=True).backend_tokenizer
    except Exception as e:
        raise ModelLoadError(f"cannot load a fast tokenizer: {type(e).__name__}: {e}",
                             where=str(path), fix="add a tokenizer.json (save the tokenizer "
                             "with transformers' fast tokenizer) to merge vocabularies") from e


def read_vocab(path: Path, rows: int) -> Vocab:
    """The vocabulary of the model at `path` whose embedding has `rows` rows."""
    tok = load_backend(path)
    full = tok.get_vocab(with_added_tokens=True)
    ids = {t: i for t, i in sorted(full.items(), key=lambda kv: kv[1]) if i < rows}
    if len(ids) < len(full):
        log.warning("%s: %d tokens have ids beyond the embedding's %d rows and are left out",
                    path, len(full) - len(ids), rows)
    added = tuple((i, AddedSpec(a.content, a.special, a.normalized, a.lstrip, a.rstrip,
                                a.single_word))
                  for i, a in sorted(tok.get_added_tokens_decoder().items()) if i < rows)
    return Vocab(ids, added, rows, len(full))


def vocab_rows(config: dict) -> int | None:
    """The embedding row count a config declares (`vocab_size`, or a text_config's)."""
    for c in (config, config.get("text_config") or {}):
        if isinstance(c.get("vocab_size"), int):
            return c["vocab_size"]
    return None
