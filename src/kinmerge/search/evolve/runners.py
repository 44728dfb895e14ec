"""The runners evolution's jobs go to, under the name they had here (the one job shape,
`Job` / `Result` / `run_job`, is kinmerge.search.jobs, shared with breeding)."""
from __future__ import annotations

from kinmerge.search.runners import (FITNESS_CACHE, InlineRunner, ProcessRunner,
                                     RayRunner, Runner, WorkerCache, make_runner)

__all__ = ["FITNESS_CACHE", "InlineRunner", "ProcessRunner", "RayRunner", "Runner",
           "WorkerCache", "make_runner"]
