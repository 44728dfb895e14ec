"""Where built zoos live (`$KINMERGE_CACHE` or `~/.cache/kinmerge`), and which zoo `zoo()`
gives: the shipped one unpacked, or one trained from a config.

A zoo is built with `kinmerge.io.atomic.atomic_dir` (a sibling temporary directory renamed
into place), so a half-built zoo is never mistaken for a finished one.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from kinmerge.errors import KinmergeError
from kinmerge.io.atomic import atomic_dir
from kinmerge.io.outpath import check_out
from kinmerge.zoo import artifact
from kinmerge.zoo.family import FORMAT, ZooConfig, build_zoo
from kinmerge.zoo.manifest import read_manifest

log = logging.getLogger(__name__)


def cache_root() -> Path:
    env = os.environ.get("KINMERGE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "kinmerge"


def zoo(config: ZooConfig | None = None, seed: int = 0, cache: str | Path | None = None,
        from_scratch: bool = False, *, threads: int | None = None) -> Path:
    """The zoo, cached: the shipped one (the default config, seed 0), unpacked in seconds; any
    other config or seed, or `from_scratch=True`, trained on first use (minutes, under the
    training thread policy of `build_zoo`; `threads` overrides it)."""
    cfg = config or ZooConfig()
    shipped = not from_scratch and uses_shipped(cfg, seed)
    digest = artifact.shipped_digest() if shipped else cfg.digest(seed)
    path = Path(cache) if cache else cache_root() / "zoo" / digest
    if is_zoo(path, digest):
        log.info("using cached zoo %s", path)
        return path
    if shipped:
        return artifact.materialize(path)
    log.info("building the zoo into %s (a few minutes, once)", path)
    return build_zoo(path, cfg, seed, threads=threads)


def uses_shipped(cfg: ZooConfig, seed: int) -> bool:
    """Whether (cfg, seed) is what the shipped artifact was trained with."""
    try:
        meta = artifact.shipped_manifest()
    except KinmergeError:
        return False
    return meta["seed"] == seed and meta["config"] == json.loads(json.dumps(cfg.to_dict()))


def is_zoo(path: Path, digest: str | None = None) -> bool:
    try:
        manifest = read_manifest(path)
    except KinmergeError:
        return False
    return manifest.format == FORMAT and (digest is None or manifest.digest == digest)


def copy_zoo(src: Path, out: Path) -> Path:
    """Copy the zoo `src` to `out` (replaced whole, in one swap, if it exists)."""
    out = check_out(out, [("the cached zoo", src)])
    with atomic_dir(out) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
    return out
