"""The Evaluator role, the data files evaluators read, and optional progress bars.

An evaluator is any callable `evaluator(model) -> {score name: float}`; `model` is anything
`load_model` accepts (a directory, a `MergedModel` in memory, a `LoadedModel`). Built-in
evaluators return one score under their `name` (higher is better, except perplexity).
"""
from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path
from typing import Iterator, Protocol, runtime_checkable

from kinmerge.errors import KinmergeError
from kinmerge.evaluate.model import ModelLike


@runtime_checkable
class Evaluator(Protocol):
    name: str

    def __call__(self, model: ModelLike) -> dict[str, float]: ...


MAX_TASK_BYTES = 64 * 2**20  # a task file: prompts and answers, not a corpus
MAX_TASK_LINES = 1_000_000


def read_task_lines(path: str | Path) -> list[str]:
    """The lines of a task file (JSONL prompts, or a text file), read through one gate: a
    regular file (a FIFO would block, a folder is no file), at most MAX_TASK_BYTES bytes and
    MAX_TASK_LINES lines, UTF-8. Every evaluator reads its file here."""
    path = Path(path)

    def fail(what: str, fix: str) -> KinmergeError:
        return KinmergeError(f"task file {path}: {what}", where=str(path), fix=fix)

    try:
        st = path.stat()
    except OSError as e:
        what = "not found" if not os.path.lexists(path) else f"cannot be read ({e.strerror})"
        raise fail(what, "check the task's `search:` / `heldout:` path") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else
                "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "not a regular file")
        raise fail(f"is {kind}, not a regular file", "give a JSONL or text file")
    if st.st_size > MAX_TASK_BYTES:
        raise fail(f"is {st.st_size} bytes, more than the {MAX_TASK_BYTES // 2**20} MiB a task "
                   "file may have", "use a smaller sample (or max_examples)")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_TASK_BYTES + 1)
    except OSError as e:
        raise fail(f"cannot be read ({e.strerror})", "check the file's permissions") from None
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise fail(f"is not UTF-8 text: byte 0x{data[e.start]:02x} at line {line}",
                   "save the file as UTF-8") from None
    lines = text.splitlines()
    if len(lines) > MAX_TASK_LINES:
        raise fail(f"has {len(lines)} lines, more than the {MAX_TASK_LINES} a task file may "
                   "have", "use a smaller sample (or max_examples)")
    return lines


def read_jsonl(path: str | Path, keys: tuple[str, ...], limit: int | None = None) -> list[dict]:
    """Rows of a JSONL task file, each checked to hold `keys`; errors name the file and line."""
    path = Path(path)
    rows = []
    for i, line in enumerate(read_task_lines(path), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as e:
            raise KinmergeError(f"line {i} is not JSON: {str(e)[:200]}", where=f"{path}:{i}",
                                fix="write one JSON object per line") from None
        if not isinstance(row, dict):
            raise KinmergeError(f"line {i} is not a JSON object", where=f"{path}:{i}",
                                fix=f"each line needs the keys {', '.join(keys)}")
        missing = [k for k in keys if k not in row]
        if missing:
            raise KinmergeError(f"line {i} lacks {', '.join(missing)}", where=f"{path}:{i}",
                                fix=f"each line needs the keys {', '.join(keys)}")
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise KinmergeError(f"no examples in {path}", where=str(path))
    return rows


def batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


@contextlib.contextmanager
def progress(enabled: bool, label: str, total: int) -> Iterator:
    """A rich progress bar on stderr when `enabled`; yields `advance(n)`."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import Progress
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
