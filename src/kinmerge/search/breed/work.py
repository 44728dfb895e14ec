"""Running a generation's jobs (kinmerge.search.jobs: merge a child into its folder if it is
not there yet, then score the folder) on any runner: inline, a process pool, Ray.

The driver (`Breeder`) plans the jobs, decides names and the budget, and records each
`Result` in the run database the moment it comes back, so jobs may finish in any order
without changing the run's results.
"""
from __future__ import annotations

import concurrent.futures as cf
from typing import Callable, Sequence

from kinmerge.search.jobs import Job, Result, run_job
from kinmerge.search.runners import Runner


def run_all(runner: Runner, jobs: Sequence[Job],
            record: Callable[[Job, Result], None],
            report: Callable[[Job, Result], None] | None = None) -> None:
    """Run `jobs`, at most `runner.workers` at once, in order of submission; `record` each
    outcome as it arrives, and `report` it (progress lines) in the order of `jobs`, whatever
    finished first. After a failure nothing new starts; what is running finishes and is
    recorded, then the first error is raised (a resumed run redoes only the failed job)."""
    todo, pending = list(jobs), {}
    error: BaseException | None = None
    finished: dict[int, Result] = {}
    i = shown = 0
    while True:
        while error is None and i < len(todo) and len(pending) < max(runner.workers, 1):
            pending[runner.submit(run_job, todo[i])] = i
            i += 1
        if not pending:
            break
        done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        for fut in done:
            k = pending.pop(fut)
            try:
                out = fut.result()
            except Exception as e:  # noqa: BLE001 -- re-raised below, after the others
                error = error or e
                continue
            record(todo[k], out)  # committed the moment it is back
            finished[k] = out
            while shown in finished:
                if report is not None:
                    report(todo[shown], finished[shown])
                shown += 1
    for k in sorted(finished):  # after a failure: what did finish, still in order
        if k >= shown and report is not None:
            report(todo[k], finished[k])
    if error is not None:
        raise error
