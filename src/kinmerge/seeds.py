"""Seeds derived from names, so randomness does not depend on processing order."""
from __future__ import annotations

import hashlib


def tensor_seed(seed: int, name: str) -> int:
    """A 63-bit seed from (seed, tensor name): stable across runs, platforms and order."""
    digest = hashlib.sha256(f"{seed}\x00{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
