"""The Evaluator role, the data files evaluators read, and optional progress bars.

An evaluator is any callable `evaluator(model) -> {score name: float}`; `model` is anything
`load_model` accepts (a directory, a `MergedModel` in memory, a `LoadedModel`). Built-in
evaluators return one score under their `name` (higher is better, except perplexity).
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator, Protocol, runtime_checkable

from kinmerge.errors import KinmergeError
from kinmerge.evaluate.model import ModelLike


@runtime_checkable
class Evaluator(Protocol):
    name: str

    def __call__(self, model: ModelLike) -> dict[str, float]: ...


def read_jsonl(path: str | Path, keys: tuple[str, ...], limit: int | None = None) -> list[dict]:
    """Rows of a JSONL file, each checked to hold `keys`; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise KinmergeError(f"evaluation file not found: {path}", where=str(path),
                            fix="give a JSONL file with one object per line")
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise KinmergeError(f"line {i} is not JSON: {e}", where=f"{path}:{i}") from None
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
