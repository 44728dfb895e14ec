"""Where built zoos live, and how a directory appears there all at once.

The cache root is `$KINMERGE_CACHE` or `~/.cache/kinmerge`. A zoo is built in a sibling
temporary directory and renamed into place, so a half-built zoo (interrupted, or built by two
processes at once) is never mistaken for a finished one.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator


def cache_root() -> Path:
    env = os.environ.get("KINMERGE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "kinmerge"


@contextlib.contextmanager
def publish_dir(out: Path) -> Iterator[Path]:
    """Yield a temporary directory beside `out`; on success it replaces `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            # another builder finished first or an old copy is there: replace it whole
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            out.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
