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

import pytest
import torch
from method_kit import DTYPES, digest, recipe

import kinmerge
from kinmerge import threads
from kinmerge.core import execute as execute_mod
from kinmerge.core.merge import open_models
from kinmerge.core.plan import plan
from kinmerge.core.recipe import load_recipe
from kinmerge.io.writer import InMemorySink
from kinmerge.methods import REGISTRY

THREADS = (1, 2, 4)


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


def test_dare_masks_are_drawn_ahead_and_give_the_same_bytes(big_family, monkeypatch):
    """DARE's masks of the next tensor are drawn on the read-ahead thread (Method.draws): the
    bytes equal drawing each in place, and most tensors take predrawn masks."""
    from kinmerge.core import peak
    from kinmerge.methods.sparsify import Predrawn

    r = recipe("dare_ties", "float32", big_family)
    taken = []
    original = Predrawn.take
    monkeypatch.setattr(Predrawn, "take", lambda self, shape, d: taken.append(d) or
                        original(self, shape, d))
    ahead = digest(kinmerge.merge_to_memory(r, seed=3).tensors)
    assert len(taken) >= 2 * 8  # two fine-tunes' masks, on most of the 12 tensors
    monkeypatch.setattr(execute_mod, "predraws", lambda plan, job: [])
    assert digest(kinmerge.merge_to_memory(r, seed=3).tensors) == ahead


def test_predrawn_masks_out_of_step_are_a_bug_not_other_bytes():
    from kinmerge.methods.sparsify import Predrawn, bernoulli_mask

    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    p = Predrawn(torch.Size([8, 8]), [0.3, 0.6], g())
    first = bernoulli_mask(torch.Size([8, 8]), 0.3, g())
    assert torch.equal(bernoulli_mask(torch.Size([8, 8]), 0.3, p), first)
    with pytest.raises(RuntimeError, match="out of step"):
        bernoulli_mask(torch.Size([8, 8]), 0.5, p)  # the method asks for another density
    with pytest.raises(RuntimeError, match="1 predrawn masks were not used"):
        p.done()
