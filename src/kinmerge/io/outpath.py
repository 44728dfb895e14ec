"""Where kinmerge may write: the one check every command runs on its OUT before writing.

`check_out` refuses, before anything is written, an OUT that would lose or pollute an input
(OUT equal to an input model folder, inside one, or an ancestor of one; a hub model counts as
its whole cache folder), an OUT that is a symbolic link, and an OUT whose name or parent cannot
hold a folder. `write_error` turns an OSError met while writing into one KinmergeError that
names the path, says what the errno means and how to fix it.
"""
from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import Iterable

from kinmerge.errors import KinmergeError, OutputExistsError

NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems
PATH_MAX = 4096  # bytes in a whole path on Linux, the final NUL included
# errnos that only the environment causes: never a bug, always one clear message
ENVIRONMENT = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS}
FIXES = {
    errno.ENOSPC: "free space on that disk, or write OUT to another disk",
    errno.EDQUOT: "free space within your disk quota, or write OUT to another disk",
    errno.EFBIG: "a file outgrew the file-size limit (`ulimit -f`): raise it, or pass a "
                 "smaller --out-shard-size",
    errno.EROFS: "the file system is read-only: choose an OUT on a writable disk",
    errno.EACCES: "choose an OUT in a folder you may write to, or fix its permissions",
    errno.EPERM: "choose an OUT in a folder you may write to, or fix its permissions",
    errno.ENAMETOOLONG: "choose a shorter OUT name",
    errno.ENOTDIR: "a part of OUT's path is a file, not a folder: choose another OUT",
    errno.EEXIST: "a part of OUT's path is a file or a broken symbolic link: choose another OUT",
    errno.EBUSY: "OUT is in use (a mount point, or a process's current folder): choose "
                 "another OUT",
}


def model_root(path: str | os.PathLike) -> Path:
    """The folder that holds a model's files: a hub snapshot counts as its whole cache
    folder (`models--org--name`), whose `blobs/` hold the snapshot's actual bytes."""
    p = Path(path).resolve()
    if p.parent.name == "snapshots" and p.parent.parent.name.startswith("models--"):
        return p.parent.parent
    return p


def hub_cache_root(ref: str) -> Path | None:
    """The hub cache folder a hub id `org/name[@rev]` would live in (None for other refs)."""
    from kinmerge.io.hub import HUB_ID, split_revision

    repo, _ = split_revision(ref)
    if not HUB_ID.match(repo) or os.path.exists(os.path.expanduser(repo)):
        return None
    from huggingface_hub.constants import HF_HUB_CACHE

    return Path(HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"


def input_roots(refs: Iterable[str | os.PathLike]) -> list[tuple[str, Path]]:
    """(ref, folder to protect) of model references, without opening or downloading any."""
    roots = []
    for ref in refs:
        if ref is None:
            continue
        p = Path(ref).expanduser()  # os.path.exists: False, not an error, for a bad path
        root = model_root(p) if os.path.exists(p) else hub_cache_root(str(ref))
        if root is not None:
            roots.append((str(ref), root))
    return roots


def check_out(out: str | os.PathLike, inputs: Iterable[tuple[str, Path]] = (), *,
              option: str = "OUT", folder: bool = True) -> Path:
    """Refuse an output path that would lose an input or cannot be written; returns `out`.

    `inputs` are (ref, model folder) pairs. A `folder` OUT may be none of them, inside one, or
    an ancestor of one; a file OUT (`folder=False`, a plot or a CSV) may not lie inside one.
    >>> check_out("runs/merged", [("base", Path("models/base"))])   # doctest: +SKIP
    """
    out = Path(out)
    _check_name(out, option)
    if out.is_symlink():
        raise KinmergeError(f"{option} {out} is a symbolic link (to {os.readlink(out)})",
                            where=str(out),
                            fix="give the real path, or remove the link: kinmerge never writes "
                                "through a link, so replacing OUT cannot reach what it points to")
    if folder and out.exists() and not out.is_dir():
        raise KinmergeError(f"{option} {out} is a file, not a folder", where=str(out),
                            fix=f"choose another {option}, or remove that file")
    if not folder and out.exists() and not out.is_file():  # a folder, a FIFO (would hang)
        raise KinmergeError(f"{option} {out} exists and is not a regular file", where=str(out),
                            fix=f"choose another {option}")
    real = _resolve(out, option)
    _check_parent(real, out, option)
    for ref, root in inputs:
        rel = _relation(real, _resolve(Path(root), "input model"), folder)
        if rel:
            raise KinmergeError(
                f"{option} {out} {rel} input model {ref} ({root}); writing there could "
                "overwrite or delete it", where=str(out),
                fix=f"choose an {option} outside every input model folder")
    return out


def _resolve(p: Path, option: str) -> Path:
    try:
        return p.resolve()
    except (OSError, RuntimeError) as e:  # Python 3.11 raises RuntimeError on a link loop
        raise KinmergeError(f"{option} {p} cannot be resolved: {e}", where=str(p),
                            fix="a symbolic link in the path loops or is unreadable: "
                                "fix it, or choose another path") from e


def _relation(real: Path, root: Path, folder: bool) -> str | None:
    if real == root:
        return "is"
    if root in real.parents:
        return "is inside"
    if folder and real in root.parents:
        return "holds"
    return None


def _check_name(out: Path, option: str) -> None:
    n = len(os.fsencode(os.path.abspath(out)))
    if n >= PATH_MAX - 64:  # room for the temporary folder's suffix and the files inside
        raise KinmergeError(f"{option} is a path of {n} bytes, over the system's limit of "
                            f"{PATH_MAX - 64} (leaving room for the files inside)",
                            where=str(out)[:300] + "...", fix="choose a shorter OUT path")
    for part in out.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise KinmergeError(f"{option} has a name of {len(os.fsencode(part))} bytes, over "
                                f"the file system's limit of {NAME_MAX}: {part[:40]}...",
                                where=str(out)[:300], fix=FIXES[errno.ENAMETOOLONG])


def _check_parent(real: Path, out: Path, option: str) -> None:
    """The nearest existing ancestor must be a folder (not a file, which no one can write
    under, root included)."""
    for anc in real.parents:
        if anc.exists():
            if not anc.is_dir():
                raise KinmergeError(f"{option} {out} cannot be created: {anc} is a file, "
                                    "not a folder", where=str(out), fix=FIXES[errno.ENOTDIR])
            if not os.access(anc, os.W_OK | os.X_OK):
                raise KinmergeError(f"{option} {out} cannot be created: no permission to "
                                    f"write in {anc}", where=str(out), fix=FIXES[errno.EACCES])
            return


def write_error(e: OSError, out: str | os.PathLike) -> KinmergeError:
    """One KinmergeError for an OSError met while writing `out`."""
    name = errno.errorcode.get(e.errno, "?")
    path = e.filename or out
    what = f"cannot write {path}: {os.strerror(e.errno) if e.errno else e} ({name})"
    return KinmergeError(what, where=str(out),
                         fix=FIXES.get(e.errno, "check that OUT's disk is writable"))


def is_write_error(e: BaseException, *roots: Path) -> bool:
    """Whether `e` is an OSError from writing (under `roots`), not from reading an input."""
    if not isinstance(e, OSError) or e.errno is None:
        return False
    if e.errno in ENVIRONMENT:
        return True
    if e.errno not in FIXES or e.filename is None:
        return False
    p = Path(os.fsdecode(e.filename)).absolute()
    return any(p == r or r in p.parents for r in (Path(r).absolute() for r in roots))


def make_dir(out: Path) -> Path:
    """mkdir -p for a run folder, its failure one KinmergeError."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(e, out) from e
    return out


MODEL_MARKERS = ("config.json", "mergekit_config.yml", "model.safetensors",
                 "model.safetensors.index.json", "pytorch_model.bin", "lineage.json")


def check_replaceable(out: Path, overwrite: bool = True) -> None:
    """An existing OUT is refused without `overwrite`; `--overwrite` replaces OUT whole:
    allowed for an empty folder or a model folder (a previous merge), refused for anything
    else (a home folder, a project, a run folder)."""
    if os.path.lexists(out) and not overwrite:
        raise OutputExistsError(f"output path {out} already exists", where=str(out),
                                fix="choose another path, or pass overwrite=True",
                                cli_fix="choose another path, or pass --overwrite")
    if not out.is_dir():
        return
    real, cwd = out.resolve(), Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        raise KinmergeError(f"OUT {out} is the current folder or holds it: replacing it would "
                            "pull the folder from under this shell", where=str(out),
                            fix="name another OUT, or run from outside it")
    entries = sorted(os.listdir(out))
    subdirs = [e for e in entries if not e.startswith(".") and (out / e).is_dir()]
    if not entries or (not subdirs and any(m in entries for m in MODEL_MARKERS)):
        return
    shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
    raise KinmergeError(f"OUT {out} exists and is not a model folder ({len(entries)} "
                        f"entries: {shown}); --overwrite would delete all of it",
                        where=str(out), fix="choose a new or empty OUT, or a previous merge's "
                                            "folder, or remove this one yourself")


def environment_error(e: BaseException) -> KinmergeError | None:
    """A KinmergeError for a failure only the environment causes (disk full, file too large,
    read-only disk), whether raised as an OSError or by SQLite (directly or via SQLAlchemy)."""
    if isinstance(e, OSError) and e.errno in ENVIRONMENT:
        return write_error(e, e.filename or "the output")
    import sqlite3

    orig = getattr(e, "orig", None) or e.__cause__ or e
    if isinstance(orig, sqlite3.OperationalError) and "disk is full" in str(orig):
        return KinmergeError(f"cannot write the run's database: {orig}",
                             fix=FIXES[errno.ENOSPC])
    return None


def hidden_name(out: Path) -> str:
    """The hidden name beside OUT that its temp folders and lock file start with: `.{name}`,
    or `.{hash of name}` where the name leaves no room for their suffixes."""
    if len(os.fsencode(out.name)) + 48 <= NAME_MAX:
        return f".{out.name}"
    return "." + hashlib.sha1(os.fsencode(out.name)).hexdigest()[:16]
