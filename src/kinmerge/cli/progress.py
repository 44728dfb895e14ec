"""Progress bars on stderr, drawn from the callbacks the library calls (it never prints)."""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator

from kinmerge.cli.app import console


@contextmanager
def progress_bar(enabled: bool, what: str) -> Iterator[Callable[[int, int], None] | None]:
    """A bar of unknown length at first; yields `update(done, total)`, or None when disabled."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, \
        TimeRemainingColumn

    cols = (TextColumn(what), BarColumn(), TaskProgressColumn(), TimeRemainingColumn())
    with Progress(*cols, console=console, transient=True) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextmanager
def merge_bar(enabled: bool) -> Iterator[Callable | None]:
    """Yields the `progress(plan, job)` callback of `kinmerge.core.merge`, or None when disabled.

    The bar appears at the first finished tensor, so an error while loading or planning the
    recipe is printed alone.
    """
    if not enabled:
        yield None
        return
    with ExitStack() as stack:
        state: dict = {}

        def tick(plan, job) -> None:
            if "update" not in state:
                state["update"] = stack.enter_context(progress_bar(True, "merge"))
                state["done"] = 0
            state["done"] += 1
            state["update"](state["done"], len(plan.jobs))

        yield tick
