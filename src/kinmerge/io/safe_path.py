"""The one rule for every file kinmerge reads from a model folder: it stays inside the folder.

Model folders come from strangers. A shard index may name `../x` or `/etc/passwd`, and a
`tokenizer.json` may be a symlink to any local file, which a merge would copy into its output
and `push` would upload. So every path taken from a model folder goes through `inside`: after
following links it must lie under the model folder. A Hugging Face cache snapshot
(`models--org--name/snapshots/<rev>/`) links each file to `../../blobs/<hash>`; there the
allowed root is the cache entry `models--org--name`, so cached models keep working.

`regular_file` refuses what is not a plain file (a FIFO would block `open` forever, a device
would stream without end, a directory fails late and obscurely) before anything opens it.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from kinmerge.errors import ModelLoadError

HUB_KINDS = ("models--", "datasets--", "spaces--")
FIX_LINK = ("replace the link by a copy of the file inside the model folder (`cp -L`), "
            "or remove it")


def model_root(model_dir: str | os.PathLike) -> Path:
    """The resolved folder the model's files must stay under (the hub cache entry for a
    cache snapshot)."""
    d = _resolve(Path(model_dir), Path(model_dir))
    for snap in (d, *d.parents):  # the model may sit in a subfolder of a snapshot
        if snap.parent.name == "snapshots" and snap.parent.parent.name.startswith(HUB_KINDS):
            return snap.parent.parent
    return d


def inside(model_dir: str | os.PathLike, name: str | os.PathLike, *, what: str = "file") -> Path:
    """`model_dir / name`, refused with a ModelLoadError unless it stays inside the folder.

    `name` is a path relative to the folder (as an index or a config names it); absolute
    names, `..` escapes and links leading out are refused. The path is returned as joined
    (not resolved), so messages and shard names read as the user wrote them.

    >>> inside("models/ft1", "model-00001-of-00002.safetensors")      # doctest: +SKIP
    """
    model_dir = Path(model_dir)
    if not isinstance(name, (str, os.PathLike)):
        raise ModelLoadError(f"{what} is named by a {type(name).__name__}, not a file name",
                             where=str(model_dir), fix="re-download the model")
    raw = os.fspath(name)
    if not raw or "\x00" in raw or Path(raw).is_absolute():
        raise ModelLoadError(f"{_label(what, raw, repr(raw))} is not a file name inside the "
                             "model folder",
                             where=str(model_dir),
                             fix="a model folder may only name its own files; re-download it")
    path = model_dir / raw
    real, root = _resolve(path, model_dir), model_root(model_dir)
    if real != root and root not in real.parents:
        kind = "a link" if _has_link(model_dir, raw) else "a path"
        raise ModelLoadError(
            f"{_label(what, raw, repr(raw))} is {kind} leading outside the model folder "
            f"(to {real}); "
            "kinmerge reads nothing outside a model's folder", where=str(path), fix=FIX_LINK)
    return path


def check_folder(folder: str | os.PathLike, *, recursive: bool = False) -> None:
    """Refuse `folder` if an entry in it (below it, with `recursive`) is a symlink leading
    outside, or a FIFO, device or socket: for code that hands a whole folder to a library that
    reads what it finds (a tokenizer load, an upload)."""
    folder = Path(folder)
    for dirpath, dirnames, filenames in os.walk(folder):  # does not descend into dir links
        for entry in dirnames + filenames:
            p = Path(dirpath) / entry
            if p.is_symlink():
                inside(folder, p.relative_to(folder), what=entry)
            if entry in filenames and p.exists():  # (a dangling link reads as nothing)
                regular_file(p, what=entry)
        if not recursive:
            break


def present(path: Path) -> bool:
    """Whether `path` is there at all: a dangling link is (and is refused when read)."""
    return path.exists() or path.is_symlink()


def regular_file(path: str | os.PathLike, *, what: str = "file") -> os.stat_result:
    """The stat of `path`, refused unless it is a regular file (following links)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        raise unreadable(path, e, what=what) from e
    if not stat.S_ISREG(st.st_mode):
        raise ModelLoadError(f"{_label(what, path.name)} is {_kind(st.st_mode)}, not a "
                             "regular file",
                             where=str(path),
                             fix="replace it by the real file (re-download the model)")
    return st


def read_bounded(model_dir: str | os.PathLike, name: str, *, max_bytes: int,
                 what: str | None = None) -> bytes | None:
    """The bytes of the model's file `name`, or None when there is none: refused with one
    ModelLoadError if it leaves the folder, is not a regular file (a FIFO would block), or
    holds more than `max_bytes` (read no further than that, whatever stat said)."""
    what = what or name
    f = Path(model_dir) / name
    if not present(f):
        return None
    inside(model_dir, name, what=what)
    return read_at_most(f, max_bytes, what=what)


def read_at_most(f: Path, max_bytes: int, *, what: str, holder: str = "such a file",
                 fix: str = "check the file: repair or re-download the model") -> bytes:
    """The bytes of the regular file `f`, refused with one ModelLoadError if it is not one
    or holds more than `max_bytes` ("more than `holder` holds"); never reads further."""
    regular_file(f, what=what)
    try:
        with f.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as e:
        raise unreadable(f, e, what=what) from e
    if len(data) > max_bytes:
        raise ModelLoadError(f"{_label(what, f.name)} holds more than {max_bytes:,} bytes, "
                             f"more than {holder} holds", where=str(f), fix=fix)
    return data


def unreadable(path: Path, e: OSError, *, what: str = "file") -> ModelLoadError:
    """A ModelLoadError saying why the OS refused `path`, with the fix for that reason."""
    fixes = {errno.EACCES: "make it readable (`chmod u+r`) or run as its owner",
             errno.EPERM: "make it readable (`chmod u+r`) or run as its owner",
             errno.ENAMETOOLONG: "shorten the path: one of its names is longer than the "
                                 "file system allows (255 bytes on most)",
             errno.ENOENT: "check the path", errno.ELOOP: "fix the symlink loop",
             errno.EISDIR: "replace the folder by the file"}
    why = e.strerror or type(e).__name__
    return ModelLoadError(f"cannot read {_label(what, path.name[:80])}: {why}",
                          where=str(path)[:400],
                          fix=fixes.get(e.errno, "check the path and its permissions"))


def _label(what: str, name: str, shown: str | None = None) -> str:
    """`weight file model.safetensors`, but `config.json` alone when the kind is the name."""
    return shown or name if what == name else f"{what} {shown or name}"


def _resolve(path: Path, model_dir: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop; a name too long to resolve
        err = e if isinstance(e, OSError) else OSError(errno.ELOOP, "symlink loop")
        raise unreadable(path, err) from e


def _has_link(model_dir: Path, raw: str) -> bool:
    p = model_dir
    for part in Path(raw).parts:
        p = p / part
        if p.is_symlink():
            return True
    return False


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a plain file"
