"""Run folders (evolve, breed): one live run at a time, and a database checked before use.

`run_lock(out)` holds `OUT/.kinmerge-lock` with fcntl.flock on an open descriptor: the kernel
releases it when the owner exits, however it exits (kill -9 included), so a lock file left
behind is harmless and never needs removing. The file records the owner's pid and host, which
the refusal of a second run names.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
from pathlib import Path
from typing import Iterator

from kinmerge.errors import KinmergeError

LOCK = ".kinmerge-lock"
SQLITE_MAGIC = b"SQLite format 3\x00"


@contextlib.contextmanager
def run_lock(out: str | Path, command: str) -> Iterator[None]:
    """Hold OUT for this process until the block ends; refuse if a live run holds it."""
    import fcntl

    path = Path(out) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(out, path, command) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "command": command, "started": time.strftime(
                                     "%Y-%m-%d %H:%M:%S %z")}).encode() + b"\n")
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _busy(out: str | Path, path: Path, command: str) -> KinmergeError:
    try:
        owner = json.loads(path.read_text())
        who = (f"pid {owner['pid']} on host {owner['host']} ({owner.get('command', '?')}, "
               f"started {owner.get('started', '?')})")
    except (OSError, ValueError, KeyError, TypeError):
        who = "another process (its pid is not recorded yet)"
    return KinmergeError(f"{out} is in use by a live kinmerge run: {who}", where=str(path),
                         fix=f"wait for that run to finish (or stop it), then run {command} "
                             "again to resume; or choose another out folder",
                         cli_fix=f"wait for that run to finish (or stop it), then rerun "
                                 f"`kinmerge {command}` to resume; or choose another --out")


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
