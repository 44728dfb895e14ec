"""Fuzzers for the worker cache's surfaces: any `worker_cache:` value is a size or one clear
KinmergeError; any budget and any sequence of merges through one cache gives the uncached
bytes and never holds more than the budget. Each case has a time limit (a hypothesis
deadline: a slow case is a failure)."""
from __future__ import annotations

import os
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kinmerge
from kinmerge.errors import KinmergeError
from kinmerge.io.cache import TensorCache
from kinmerge.search.evolve.config import load_evolve_config

from test_worker_cache import METHODS, as_bytes, recipe, stored_bytes

SLOW = os.environ.get("KINMERGE_SLOW") == "1"


def sizes() -> st.SearchStrategy:
    units = st.sampled_from(["", "B", "K", "M", "G", "T", "KB", "MB", "GB", "GiB", "MiB", "x"])
    number = st.one_of(st.integers(-5, 10**13).map(str),
                       st.floats(allow_nan=True, allow_infinity=True).map(str))
    return st.one_of(st.builds(lambda n, u, sp: n + sp + u, number, units,
                               st.sampled_from(["", " "])),
                     st.integers(-10**3, 10**13), st.floats(), st.booleans(), st.none(),
                     st.text(max_size=8), st.lists(st.integers(), max_size=2),
                     st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=2000 if SLOW else 200, deadline=timedelta(seconds=2),
          derandomize=not SLOW, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=sizes())
def test_any_worker_cache_is_a_size_or_one_clear_error(ps_config, value):
    try:
        cfg = load_evolve_config(ps_config(worker_cache=value))
    except KinmergeError as e:
        assert "worker_cache" in str(e)
        return
    assert isinstance(cfg.worker_cache, int) and cfg.worker_cache >= 0


@pytest.fixture(scope="module")
def uncached(family):
    return {m: as_bytes(kinmerge.merge_to_memory(recipe(family, m))) for m in METHODS}


@settings(max_examples=150 if SLOW else 25, deadline=timedelta(seconds=20),
          derandomize=not SLOW, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                       HealthCheck.too_slow])
@given(data=st.data())
def test_any_budget_and_merges_give_the_uncached_bytes(family, uncached, data):
    total = sum(stored_bytes(p) for p in [family["base"], *family["ft"][:2]])
    budget = data.draw(st.one_of(st.integers(0, total + 1000), st.sampled_from([0, total])))
    cache = TensorCache(budget)
    for m in data.draw(st.lists(st.sampled_from(sorted(METHODS)), min_size=1, max_size=4)):
        assert as_bytes(kinmerge.merge_to_memory(recipe(family, m), cache=cache)) == uncached[m]
        assert 0 <= cache.bytes <= budget
