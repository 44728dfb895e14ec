"""`kinmerge lora-merge BASE+LORA OUT`: an adapter merged into its base, through the core.

It is a one-model passthrough recipe over the `base+lora` reference, so the same plan,
executor, atomic writer and lineage as every merge apply; LoraModelReader does the math.

>>> kinmerge.lora_merge("models/llama+adapters/chat", "runs/llama-chat")   # doctest: +SKIP
"""
from __future__ import annotations

import os
from pathlib import Path

from kinmerge.errors import KinmergeError
from kinmerge.io.refs import split_lora
from kinmerge.core.merge import merge


def lora_recipe(ref: str, dtype: str | None = None) -> dict:
    """The passthrough recipe that writes `base+lora` merged."""
    if split_lora(ref)[1] is None:
        raise KinmergeError(f"{ref!r} names no LoRA adapter", where="lora-merge MODEL",
                            fix="write the model and the adapter as BASE+LORA")
    recipe: dict = {"merge_method": "passthrough", "models": [{"model": ref}]}
    if dtype:
        recipe["dtype"] = dtype
    return recipe


def lora_merge(ref: str, out: str | os.PathLike, *, dtype: str | None = None,
               **merge_options) -> Path:
    """Write `base+lora` with the adapter merged into the model directory `out`.

    `dtype` casts the result (mergekit's --lora-merge-dtype); default: the base's dtypes.
    Other keywords are `merge`'s (overwrite, out_shard_size, copy_tokenizer, ...).
    """
    return merge(lora_recipe(ref, dtype), out, **merge_options)
