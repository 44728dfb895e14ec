"""The dtype names a recipe may use (mergekit's spellings), and their torch dtypes."""
from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
          "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float64": torch.float64}


def dtype_of(name: str | None) -> torch.dtype | None:
    return DTYPES[name] if name else None
