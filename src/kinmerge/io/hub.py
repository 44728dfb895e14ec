"""Model references: a local directory, a hub id `org/name`, or `org/name@revision`.

Hub ids resolve through the huggingface_hub cache (HF_HUB_CACHE / HF_HOME), so a model that
is already cached loads offline. A download is tried only when the cache lacks it and
HF_HUB_OFFLINE is not set.

A name that is a local typo is reported as one, never downloaded: a reference that looks
like a path (`./x`, `/x`, `a/b/c`, `~/x`), or an `org/name` whose `org` is a local folder
(`zoo/sorrt` beside `zoo/`) and that the hub cache does not hold, is "no folder zoo/sorrt
(did you mean zoo/sort?)".
"""
from __future__ import annotations

import difflib
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
        org_is_local = bool(HUB_ID.match(repo)) and Path(repo.split("/")[0]).is_dir()
    except OSError as e:  # a name too long for the file system; a folder we may not enter
        from kinmerge.io.safe_path import unreadable
        raise unreadable(path, e, what="model") from e
    if not HUB_ID.match(repo) or local:
        raise no_folder(ref)
    if org_is_local:  # `zoo/sorrt` beside a local zoo/: a typo, unless the cache holds it
        cached = _cached(repo, revision)
        if cached is None:
            raise no_folder(ref, hub_hint=repo)
        return cached
    return _from_hub(repo, revision)


def no_folder(ref: str | os.PathLike, hub_hint: str | None = None) -> ModelLoadError:
    """A model reference that names no folder: the closest existing one, if any is close."""
    ref = str(ref)
    path = Path(ref).expanduser()
    close = _closest(path)
    what = f"model {ref!r} not found: no folder {ref}"
    what += f" (did you mean {close}?)" if close else ""
    if hub_hint:
        fix = (f"fix the path; it is read as a local folder because ./{hub_hint.split('/')[0]}/ "
               f"exists (for the hub model {hub_hint}, `hf download {hub_hint}` first)")
    else:
        fix = "give a model directory, a hub id `org/name`, or `org/name@revision`"
    return ModelLoadError(what, where=ref, fix=fix)


def _closest(path: Path) -> str | None:
    """The sibling of `path`'s last existing parent folder whose name is closest to the
    missing part (bounded: one folder's listing, at most 1000 names)."""
    parent = path.parent
    try:
        if not parent.is_dir() or path.name in ("", ".", ".."):
            return None
        names = []
        for i, entry in enumerate(os.scandir(parent)):
            if i >= 1000:
                break
            if entry.is_dir():
                names.append(entry.name)
    except OSError:
        return None
    match = difflib.get_close_matches(path.name, names, n=1, cutoff=0.6)
    if not match:
        return None
    shown = str(parent / match[0]) if str(parent) != "." else match[0]
    return shown + ("/" if str(path).endswith("/") else "")


def _cached(repo: str, revision: str | None) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        return None
    except Exception as e:  # a malformed cache entry
        log.debug("cache lookup for %s failed: %r", repo, e)
        return None


def _from_hub(repo: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    cached = _cached(repo, revision)
    if cached is not None:
        return cached
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
