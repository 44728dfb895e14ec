"""Directories that appear all at once: built beside their final path, renamed into place."""
from __future__ import annotations

import contextlib
import shutil
import uuid
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_dir(out: str | Path) -> Iterator[Path]:
    """A temporary directory beside `out`, renamed to `out` on success, removed on failure.

    An existing `out` is moved aside and deleted only after the new one is in place, so a
    reader never finds a half-written directory (a merge, a zoo) under the final name.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = out.parent / f".{out.name}.kinmerge-tmp-{tag}"
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            old = out.parent / f".{out.name}.kinmerge-old-{tag}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
