"""Shared settings of the property-based fuzzers: example counts and a per-case time limit.

`fuzz(default, slow)` is hypothesis' settings with `default` examples in the normal suite and
`slow` under KINMERGE_SLOW=1. `time_limit(seconds)` wraps one example: past the limit the
example is interrupted (SIGALRM) and fails as a hang, so a hang is found, not waited on.
Hypothesis then shrinks it like any other failure.
"""
from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
from typing import Callable, Iterator

from hypothesis import HealthCheck, settings

SLOW = os.environ.get("KINMERGE_SLOW") == "1"
CASE_LIMIT_S = 5.0  # one example of any fuzzer; the slowest take ~0.1 s


class CaseTimeout(AssertionError):
    """One fuzz example ran past its time limit: a hang, reported as a failure."""


def fuzz(default: int, slow: int) -> settings:
    return settings(max_examples=slow if SLOW else default, deadline=None, database=None,
                    derandomize=not SLOW,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@contextlib.contextmanager
def limited(seconds: float = CASE_LIMIT_S, what: str = "fuzz example") -> Iterator[None]:
    """Run the block under a wall-clock limit; past it, raise CaseTimeout inside the block."""
    if threading.current_thread() is not threading.main_thread():  # signals: main thread only
        yield
        return

    def expire(signum, frame):
        raise CaseTimeout(f"{what} ran past its {seconds:g} s limit (a hang?)")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def time_limit(seconds: float = CASE_LIMIT_S) -> Callable:
    """Decorator form of `limited` for a test body (put it under @given)."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args, **kwargs):
            with limited(seconds, fn.__name__):
                return fn(*args, **kwargs)
        return run
    return wrap
