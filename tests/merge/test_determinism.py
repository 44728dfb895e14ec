"""A merge's bytes are a function of the recipe and the inputs alone: every registered method
gives the same bytes at 1, 2 and 4 torch threads, in float32 and bfloat16, and with or
without the read-ahead.

The tensors are large enough (65K-262K elements; torch splits a reduction across threads
above 32K) that torch's reductions do split: without `threads.arithmetic` around the method
call, the thread-count comparison fails for dare_linear, dare_ties, della, della_linear and
model_stock (float32 and bfloat16), karcher (float32) and slerp (float32, 4 threads): 12 of
the 40 cases (checked when the test was written).
"""
from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch

import kinmerge
from kinmerge import threads
from kinmerge.core import execute as execute_mod
from kinmerge.core.merge import open_models
from kinmerge.core.plan import plan
from kinmerge.core.recipe import load_recipe
from kinmerge.io.writer import InMemorySink
from kinmerge.methods import REGISTRY
from kinmerge.zoo.synthetic import synthetic_llama

THREADS = (1, 2, 4)
DTYPES = ("float32", "bfloat16")
# parameters that make each method do its reductions and masks (defaults elsewhere)
MODEL_PARAMS = {"weight": [0.5, 0.3, 0.2], "density": [0.5, 0.6, 0.7],
                "epsilon": [0.1, 0.1, 0.1], "gamma": [0.01, 0.01, 0.01], "scale": [1.0]}
GLOBAL_PARAMS = {"t": 0.3, "select_topk": 0.5}


@pytest.fixture(scope="module")
def big_family(tmp_path_factory):
    """A base and three fine-tunes per dtype, one layer, 256 x 512 MLP matrices."""
    root = tmp_path_factory.mktemp("big-family")
    out = {}
    for dt in DTYPES:
        kw = dict(layers=1, hidden=256, intermediate=512, vocab=32, heads=4,
                  dtype=getattr(torch, dt))
        base = synthetic_llama(root / dt / "base", seed=0, **kw)
        fts = [synthetic_llama(root / dt / f"ft{i}", base=base, seed=i, delta=0.5, **kw)
               for i in (1, 2, 3)]
        out[dt] = (str(base), [str(f) for f in fts])
    return out


def recipe(name: str, dtype: str, family) -> dict:
    m = REGISTRY[name]
    base, fts = family[dtype]
    n = m.n_models or 3
    models = []
    for i, ft in enumerate(fts[:n]):
        params = {p.name: MODEL_PARAMS[p.name][i] for p in m.params
                  if p.scope == "model" and p.name in MODEL_PARAMS}
        models.append({"model": ft, **({"parameters": params} if params else {})})
    if m.with_base:  # slerp, nearswap: the base is one of the listed models
        models.insert(0, {"model": base})
    r = {"merge_method": name, "models": models, "dtype": dtype}
    if m.takes_base:
        r["base_model"] = base
    params = {p.name: GLOBAL_PARAMS[p.name] for p in m.params
              if p.scope == "global" and p.name in GLOBAL_PARAMS}
    if params:
        r["parameters"] = params
    return r


def digest(tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    return {n: hashlib.sha256(t.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()
            for n, t in sorted(tensors.items())}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_same_bytes_at_any_thread_count(big_family, name, dtype):
    runs = {n: digest(kinmerge.merge_to_memory(recipe(name, dtype, big_family), seed=7,
                                               threads=n).tensors) for n in THREADS}
    assert len(next(iter(runs.values()))) >= 9
    for n in THREADS[1:]:
        differ = [k for k in runs[1] if runs[1][k] != runs[n][k]]
        assert not differ, f"{name} {dtype}: {n} threads differ from 1 in {differ}"


def test_no_read_ahead_gives_the_same_bytes(big_family, monkeypatch):
    """The read-ahead overlaps loading the next job with the current one; off, same bytes."""
    r = recipe("dare_ties", "float32", big_family)
    with_ahead = digest(kinmerge.merge_to_memory(r, seed=3, threads=2).tensors)
    monkeypatch.setattr(execute_mod, "read_ahead", lambda plan, readers: [False] * len(plan.jobs))
    without = digest(kinmerge.merge_to_memory(r, seed=3, threads=2).tensors)
    assert with_ahead == without


@pytest.mark.parametrize("name", ["della", "model_stock"])
def test_job_order_does_not_change_the_bytes(big_family, name):
    """Each tensor is computed from its own inputs and its own seed: reversed jobs, same bytes."""
    r = load_recipe(recipe(name, "float32", big_family))
    outs = []
    with open_models(r) as readers:
        p = plan(r, readers)
        for jobs in (p.jobs, p.jobs[::-1]):
            sink = InMemorySink()
            with threads.using("select", 2):
                execute_mod.execute(dataclasses.replace(p, jobs=jobs), readers, sink, seed=5)
            outs.append(digest(sink.tensors))
    assert outs[0] == outs[1] and len(outs[0]) >= 9


def test_arithmetic_runs_on_one_thread_and_restores():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        with threads.arithmetic():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 3
        with pytest.raises(ValueError), threads.arithmetic():
            raise ValueError("restored on error too")
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
