"""The dtype names a recipe may use (mergekit's spellings), and their torch dtypes.

The names are plain strings, so recipes are checked (and `--dtype` choices listed) without
importing torch; a plan holds their `Dtype` values (`dtype_named`, torch-free too) and
`dtype_of` gives the torch dtype where tensors are made.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from kinmerge.io.dtype import Dtype, as_dtype

if TYPE_CHECKING:
    import torch

# spelling -> the torch dtype's name
DTYPES = {"float32": "float32", "fp32": "float32", "float": "float32",
          "float16": "float16", "fp16": "float16", "half": "float16",
          "bfloat16": "bfloat16", "bf16": "bfloat16", "float64": "float64"}


def dtype_named(name: str | None) -> Dtype | None:
    """The `Dtype` a recipe's dtype name stands for (None for None); no torch."""
    return as_dtype(DTYPES[name]) if name else None


def dtype_of(name: str | None) -> torch.dtype | None:
    """The torch dtype a recipe's dtype name stands for (None for None)."""
    d = dtype_named(name)
    return d.torch if d is not None else None
