"""Run folders (evolve, breed): one live run at a time, and a database checked before use.

`run_lock(out, command)` is the one lock every command that writes an OUT holds (merge,
kinmerge-yaml, kinmerge-multi, lora-merge, soup, zoo build, demo, evolve, breed): an
fcntl.flock on `.{OUT name}.kinmerge.lock` beside OUT, so it exists before OUT does (a merge's
OUT appears only when it is complete) and the kernel releases it when the owner exits, however
it exits (kill -9 included). The file records the owner's pid, host and command, which the
refusal of a second run names; the owner removes it on release, and a file a killed owner left
is harmless (the next run takes it over). Within one thread the lock is re-entrant: a
multi-stage merge holds OUT and its final stage's `merge` takes the same lock again.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterator

from kinmerge.errors import KinmergeError
from kinmerge.io.outpath import hidden_name

LOCK = ".kinmerge.lock"  # the lock file's suffix: `.{OUT name}.kinmerge.lock` beside OUT
SQLITE_MAGIC = b"SQLite format 3\x00"
_HELD: dict[str, list] = {}  # lock path -> [owning thread id, depth], this process's locks
_GUARD = threading.Lock()


def lock_path(out: str | Path) -> Path:
    """The lock file of OUT: beside it, named after it (hashed when the name is too long)."""
    out = Path(os.path.abspath(out))
    return out.parent / f"{hidden_name(out)}{LOCK}"


@contextlib.contextmanager
def run_lock(out: str | Path, command: str) -> Iterator[None]:
    """Hold OUT for this process until the block ends; refuse if a live run holds it.

    >>> with run_lock("runs/merged", "merge"): ...                  # doctest: +SKIP
    """
    path = lock_path(out)
    key, me = str(path), threading.get_ident()
    with _GUARD:
        held = _HELD.get(key)
        if held is not None and held[0] == me:
            held[1] += 1
            mine = None
        else:
            mine = _acquire(path, out, command)
            _HELD[key] = [me, 1]
    try:
        yield
    finally:
        with _GUARD:
            _HELD[key][1] -= 1
            if _HELD[key][1] == 0:
                del _HELD[key]
                if mine is not None:
                    _release(path, mine)


def _acquire(path: Path, out: str | Path, command: str) -> tuple[int, list[Path]]:
    """The descriptor of `path`, flocked and still the file at `path` (an owner that removed
    it between our open and our flock leaves us a lock on a deleted file: take the new one),
    and the folders made to hold it (removed on release if the run left them empty)."""
    import fcntl

    from kinmerge.io.outpath import write_error

    made = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    for _ in range(100):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise write_error(e, out) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            _tidy(made)
            raise _busy(out, path, command) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.lstat(path))
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "command": command, "started": time.strftime(
                                     "%Y-%m-%d %H:%M:%S %z")}).encode() + b"\n")
        return fd, made
    raise _busy(out, path, command)


def _release(path: Path, held: tuple[int, list[Path]]) -> None:
    fd, made = held
    with contextlib.suppress(OSError):
        if os.path.samestat(os.fstat(fd), os.lstat(path)):
            os.unlink(path)  # still ours: no one else can hold it while we do
    os.close(fd)  # closing releases the lock
    _tidy(made)


def _tidy(made: list[Path]) -> None:
    """Remove the folders the lock made, deepest first, while they are empty (a failed run
    leaves no empty `runs/` behind; one that wrote OUT keeps them)."""
    for d in made:
        try:
            os.rmdir(d)
        except OSError:
            return


def _busy(out: str | Path, path: Path, command: str) -> KinmergeError:
    try:
        owner = json.loads(path.read_text())
        who = (f"pid {owner['pid']} on host {owner['host']} ({owner.get('command', '?')}, "
               f"started {owner.get('started', '?')})")
    except (OSError, ValueError, KeyError, TypeError):
        who = "another process (its pid is not recorded yet)"
    return KinmergeError(f"{out} is in use by a live kinmerge run: {who}", where=str(path),
                         fix=f"wait for that run to finish (or stop it), then run {command} "
                             "again; or choose another output folder",
                         cli_fix=f"wait for that run to finish (or stop it), then rerun "
                                 f"`kinmerge {command}`; or choose another OUT")


def check_database(path: str | Path, what: str) -> None:
    """Refuse a database file that is not a readable SQLite database (truncated, garbage),
    before SQLite or SQLAlchemy meets it. A missing or empty file is a new run."""
    path = Path(path)
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return
    fix = (f"move {path.name} away (the run starts over in this folder), or start a new --out; "
           f"a copy made while no run was writing may still resume")
    if not path.is_file():
        raise KinmergeError(f"{what} {path} is not a file", where=str(path), fix=fix)
    with open(path, "rb") as f:
        magic = f.read(len(SQLITE_MAGIC))
    problem = None if magic == SQLITE_MAGIC else "it is not an SQLite database"
    if problem is None:
        problem = _integrity(path)
    if problem:
        raise KinmergeError(f"{what} {path} is corrupt: {problem}", where=str(path), fix=fix)


def _integrity(path: Path) -> str | None:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = con.execute("PRAGMA quick_check").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        return str(e)
    bad = [r[0] for r in rows if r[0] != "ok"]
    return "; ".join(bad[:3]) if bad else None
