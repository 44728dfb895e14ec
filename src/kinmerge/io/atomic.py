"""Directories that appear all at once: built beside their final path, swapped into place.

The temporary folder is `.{OUT name}.kinmerge-tmp-{host}-{pid}-{tag}` beside OUT: its name
says which process on which host owns it, so the next run on the same OUT removes the ones
whose owner is dead (kill -9, power loss) and leaves a live concurrent run's alone. An OUT name
too long to carry that suffix within the 255-byte file-name limit gets a hashed prefix instead.

Replacing an existing OUT uses Linux's renameat2(RENAME_EXCHANGE): one atomic swap, so at
every instant either the old or the new OUT is in place. Where that call is missing (other
systems, some network file systems) the fallback renames the old OUT aside and the new one in:
two renames, between which a kill leaves the old OUT under `.{name}.kinmerge-old-...`, where
the next run finds it and says so.

The whole write holds OUT's lock (`kinmerge.io.rundir.run_lock`), and publishing checks again,
at the rename, that it replaces only what it was allowed to: nothing when OUT did not exist at
the start (an OUT that appeared meanwhile is kept and the run fails), else the very folder
that was there when the run began and `overwrite` allowed (renameat2's RENAME_NOREPLACE, or
the folder's device and inode compared just before the swap).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import logging
import os
import re
import shutil
import socket
import uuid
from pathlib import Path
from typing import Iterator

from kinmerge.io.outpath import hidden_name, is_write_error, write_error
from kinmerge.io.rundir import run_lock

log = logging.getLogger(__name__)
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
AT_FDCWD = -100
LEFTOVER = re.compile(r"\.kinmerge-(tmp|old)-(?:([0-9a-f]{8})-(\d+)-)?[0-9a-f]{8}$")


def host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def temp_path(out: Path, kind: str = "tmp") -> Path:
    """A fresh temporary path beside `out`, named after its owner (host, pid)."""
    return out.parent / (f"{hidden_name(out)}.kinmerge-{kind}-{host_tag()}-{os.getpid()}-"
                         f"{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_dir(out: str | Path, *, overwrite: bool = True,
               command: str = "write") -> Iterator[Path]:
    """A temporary directory beside `out`, swapped into place on success, removed on failure.

    An existing `out` stays whole until the new one replaces it in one step, so a reader never
    finds a half-written directory (a merge, a zoo) under the final name. OUT's lock is held
    throughout (`command` names this run to a second one). `overwrite=False` refuses an
    existing OUT; either way, publishing replaces only the folder that was there at the start.
    An OSError from writing (disk full, file too large, no permission) becomes one
    KinmergeError.
    """
    out = Path(os.path.abspath(out))  # `.` has no name to put a temp folder beside
    with run_lock(out, command):
        before = identity(out)
        if before is not None and not overwrite:
            raise _exists(out, "already exists")
        tmp = _new_temp(out, tidy=True)
        try:
            yield tmp
            publish(tmp, out, replaces=before)
        except BaseException as e:
            _remove(tmp)
            if is_write_error(e, tmp, out):
                raise write_error(e, out) from e
            raise


@contextlib.contextmanager
def scratch_dir(out: str | Path) -> Iterator[Path]:
    """A temporary folder in OUT's own temporary area (named like atomic_dir's, so a killed
    run's is removed by the next run on OUT), removed when the block ends, however it ends."""
    tmp = _new_temp(Path(os.path.abspath(out)), tidy=False)
    try:
        yield tmp
    finally:
        _remove(tmp)


def _new_temp(out: Path, *, tidy: bool) -> Path:
    """A new temporary folder beside `out` (its parents made); `tidy` first removes what dead
    runs left there. An OSError becomes one KinmergeError."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if tidy:
            remove_leftovers(out)
        tmp = temp_path(out)
        tmp.mkdir()
    except OSError as e:
        raise write_error(e, out) from e
    return tmp


def identity(p: Path) -> tuple[int, int] | None:
    """(device, inode) of what is at `p` (a link is itself), None if nothing is."""
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _exists(out: Path, how: str):
    from kinmerge.errors import OutputExistsError

    return OutputExistsError(f"output path {out} {how}", where=str(out),
                             fix="choose another path, or pass overwrite=True (--overwrite on "
                                 "the command line)")


def publish(tmp: Path, out: Path, replaces: tuple[int, int] | None = None) -> None:
    """Put the finished folder `tmp` at `out`, replacing (then deleting) what was there only
    if it is `replaces` (the (device, inode) the run started with); an OUT that appeared, or
    was swapped for another, while the run wrote is kept and the run fails."""
    now = identity(out)
    if now is None:
        _rename_noreplace(tmp, out)
        return
    if now != replaces:
        raise _exists(out, "appeared while this run was writing it; it was left as it is"
                      if replaces is None else
                      "was replaced by another folder while this run was writing it; it was "
                      "left as it is")
    if exchange(tmp, out):  # tmp now holds the old OUT
        _remove(tmp)
        return
    old = temp_path(out, "old")
    os.rename(out, old)
    os.rename(tmp, out)
    _remove(old)


def _rename_noreplace(tmp: Path, out: Path) -> None:
    fn = _renameat2()
    if fn is not None:
        if fn(AT_FDCWD, os.fsencode(tmp), AT_FDCWD, os.fsencode(out), RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise _exists(out, "appeared while this run was writing it; it was left as it is")
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), str(out))
    if os.path.lexists(out):  # no atomic no-replace here: the lock keeps kinmerge runs out
        raise _exists(out, "appeared while this run was writing it; it was left as it is")
    os.rename(tmp, out)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the system cannot."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # this file system cannot swap: fall back to two renames
    raise OSError(err, os.strerror(err), str(b))


_RENAMEAT2: list = []


def _renameat2():
    if not _RENAMEAT2:
        fn = None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fn = libc.renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
        except (OSError, AttributeError):
            fn = None
        _RENAMEAT2.append(fn)
    return _RENAMEAT2[0]


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            p.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _size(p: Path) -> int:
    total = 0
    for root, _, files in os.walk(p):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total


def remove_leftovers(out: str | Path) -> int:
    """Remove the temporary folders that dead runs left beside `out`; returns bytes freed.

    A leftover of a live process, of another host, or of an older kinmerge (whose names say
    no owner) is kept and reported with the command that removes it."""
    out = Path(out)
    freed = 0
    if not out.parent.is_dir():
        return 0
    prefix = hidden_name(out)
    for p in out.parent.glob(f"{glob_escape(prefix)}.kinmerge-*"):
        m = LEFTOVER.search(p.name)
        if not m or not p.name.startswith(prefix + ".kinmerge-"):
            continue
        kind, host, pid = m.group(1), m.group(2), m.group(3)
        size = _size(p)
        dead = host == host_tag() and not _alive(int(pid))
        if dead and kind == "old" and not os.path.lexists(out):
            os.rename(p, out)  # killed between the two renames of the fallback: undo
            log.warning("restored %s from %s, left by an interrupted run (pid %s)", out, p, pid)
        elif dead:
            _remove(p)
            freed += size
            log.info("removed %s (%s) left by an interrupted run (pid %s)", p,
                     _human(size), pid)
        elif host == host_tag() and int(pid) != os.getpid():
            log.info("kept %s (%s): process %s, which made it, is still running; if that is "
                     "not a kinmerge run, remove it: rm -rf '%s'", p, _human(size), pid, p)
        elif host != host_tag():
            log.warning("%s (%s) may be left by an interrupted run on another host or by an "
                        "older kinmerge; if no run is writing %s, remove it: rm -rf '%s'",
                        p, _human(size), out, p)
    return freed


def glob_escape(s: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", s)


def _human(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} bytes"
