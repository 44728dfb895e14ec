"""Where built zoos live: `$KINMERGE_CACHE` or `~/.cache/kinmerge`.

A zoo is built with `kinmerge.io.atomic.atomic_dir` (a sibling temporary directory renamed
into place), so a half-built zoo is never mistaken for a finished one.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    env = os.environ.get("KINMERGE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "kinmerge"

