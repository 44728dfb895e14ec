"""Model references: a local directory, a hub id `org/name`, or `org/name@revision`.

Hub ids resolve through the huggingface_hub cache (HF_HUB_CACHE / HF_HOME), so a model that
is already cached loads offline. A download is tried only when the cache lacks it and
HF_HUB_OFFLINE is not set.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from kinmerge.errors import ModelLoadError

log = logging.getLogger(__name__)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
WEIGHT_PATTERNS = ["*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json",
                   "*.json", "*.model", "*.txt", "*.jinja", "*.py", "*.md"]


def split_revision(ref: str) -> tuple[str, str | None]:
    """`org/name@rev` -> (`org/name`, `rev`); a plain reference has no revision."""
    if "@" in ref and not Path(ref).exists():
        repo, rev = ref.rsplit("@", 1)
        return repo, rev or None
    return ref, None


def resolve_model(ref: str | os.PathLike) -> Path:
    """The local directory holding model `ref`, from the filesystem or the hub cache."""
    path = Path(ref).expanduser()
    try:
        if path.is_dir():
            return path
        repo, revision = split_revision(str(ref))
        local = Path(repo).expanduser().exists()
    except OSError as e:  # a name too long for the file system; a folder we may not enter
        from kinmerge.io.safe_path import unreadable
        raise unreadable(path, e, what="model") from e
    if not HUB_ID.match(repo) or local:
        raise ModelLoadError(
            f"model {str(ref)!r} not found: no such directory",
            where=str(ref), fix="give a model directory, a hub id `org/name`, or `org/name@revision`")
    return _from_hub(repo, revision)


def _from_hub(repo: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    except Exception as e:  # a malformed cache entry
        log.debug("cache lookup for %s failed: %r", repo, e)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    at = f"@{revision}" if revision else ""
    if offline:
        raise ModelLoadError(
            f"model '{repo}{at}' is not in the Hugging Face cache and HF_HUB_OFFLINE is set",
            where=f"hub id {repo}{at}",
            fix="download it where the hub can be reached (`hf download "
                f"{repo}`), or give a local directory")
    try:
        log.info("downloading %s%s", repo, at)
        return Path(snapshot_download(repo, revision=revision, allow_patterns=WEIGHT_PATTERNS))
    except Exception as e:
        raise ModelLoadError(
            f"model '{repo}{at}' could not be fetched from the hub: {type(e).__name__}: {e}",
            where=f"hub id {repo}{at}",
            fix="check the id and revision, your network and token (HF_TOKEN), "
                "or give a local directory") from e
