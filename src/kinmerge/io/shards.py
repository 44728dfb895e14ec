"""Pure planners for sharded outputs: which tensor goes in which file, and the files' names.

Names follow Hugging Face: one file is `model.safetensors`; several are
`model-00001-of-00003.safetensors` with a `model.safetensors.index.json` beside them.
"""
from __future__ import annotations

import re

from kinmerge.errors import KinmergeError

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12,
          "KI": 2**10, "MI": 2**20, "GI": 2**30}


def parse_size(text: str | int) -> int:
    """`1B` -> 10**9 bytes, `500M` -> 5*10**8 (mergekit's units); `2GiB` and plain bytes too."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMBGT]I?)?B?\s*", str(text).upper())
    if not m or (m[2] or "") not in _UNITS or float(m[1]) <= 0:
        raise KinmergeError(f"not a shard size: {text!r}", where="--out-shard-size",
                            fix="write a positive size such as 1B, 500M, 2GiB or 1000000")
    return int(float(m[1]) * _UNITS[m[2] or ""])


def assign_shards(sizes: list[int], max_bytes: int) -> list[int]:
    """Shard number for each tensor, in order; a shard closes before it would pass max_bytes.

    A tensor larger than max_bytes gets a shard of its own.
    """
    out, shard, used = [], 0, 0
    for size in sizes:
        if used and used + size > max_bytes:
            shard, used = shard + 1, 0
        out.append(shard)
        used += size
    return out


def shard_names(n: int) -> list[str]:
    """File names for n shards."""
    if n <= 1:
        return [SINGLE]
    return [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
