"""The task-vector family is one composition (sparsify × elect × rescale), a registry row per
named method: the rows declare what mergekit's methods take, and the composition's laws hold
on random tensors (each law with a control case that shows the check can fail)."""
from __future__ import annotations

import inspect
from datetime import timedelta

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kinmerge.methods import REGISTRY
from kinmerge.methods.task_vector import (BAND, DROP, MAGPRUNE, METHODS, ROWS, TRIM,
                                          TaskVectorMerge, task_arithmetic, ties)

# a per-case time limit: a case slower than this fails the test
LAWS = settings(max_examples=60, deadline=timedelta(seconds=2), derandomize=True)

# mergekit 0.1.5's declarations: step, election, normalize and rescale defaults, extra params
EXPECTED = {
    "task_arithmetic": (None, False, False, None, ()),
    "ties": (TRIM, True, True, False, ()),
    "dare_linear": (DROP, False, False, True, ()),
    "dare_ties": (DROP, True, False, True, ()),
    "della": (MAGPRUNE, True, True, True, ("epsilon",)),
    "della_linear": (MAGPRUNE, False, False, True, ("epsilon",)),
    "breadcrumbs": (BAND, False, False, False, ("gamma",)),
    "breadcrumbs_ties": (BAND, True, False, False, ("gamma",)),
}
WITH_STEP = [r.name for r in ROWS if r.sparsify is not None]


def test_each_named_method_is_a_row_of_the_composition():
    assert [r.name for r in ROWS] == list(EXPECTED) and set(METHODS) == set(EXPECTED)
    for name, (step, elect, normalize, rescale, extra) in EXPECTED.items():
        m = REGISTRY[name]
        assert isinstance(m.fn, TaskVectorMerge) and m.fn.sparsify is step, name
        assert m.fn.elect is elect and m.needs_base, name
        p = {q.name: q.default for q in m.params}
        assert p["normalize"] is normalize and p.get("rescale") is rescale, name
        assert [q.name for q in m.params] == (
            ["weight"] + (["density", *extra] if step else []) + ["normalize"] +
            (["rescale"] if step else []) + ["lambda", "int8_mask"]), name
        assert m.stochastic == (step in (DROP, MAGPRUNE)), name
        assert m.options == (("topk",) if step in (TRIM, BAND) else ()), name
        assert (m.caution is None) == elect, name  # the zero-weight-sum warning: no election
        assert m.work == ("select" if step else "elementwise"), name


def test_the_call_takes_the_declared_keywords_and_nothing_else():
    sig = inspect.signature(ties)
    assert str(sig) == ("(tensors, base, *, weight, density=1.0, normalize=True, rescale=False, "
                        "lambda_=1.0, topk='stable', generator=None) -> torch.Tensor")
    x, b = [torch.ones(3)], torch.zeros(3)
    with pytest.raises(TypeError, match=r"ties\(\) got unexpected keyword arguments \['densty'\]"):
        ties(x, b, weight=[1.0], densty=[0.5])
    with pytest.raises(TypeError, match=r"missing required keyword arguments \['weight'\]"):
        ties(x, b)
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['topk'\\]"):
        task_arithmetic(x, b, weight=[1.0], topk="stable")  # no ranking step, no topk


@st.composite
def cases(draw, n_max: int = 3):
    n = draw(st.integers(1, n_max))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=2)))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(shape, generator=g) for _ in range(n)]
    base = torch.randn(shape, generator=g) * 0.1
    weight = draw(st.lists(st.sampled_from([1.0, 0.5, -0.5, 0.25, 2.0]), min_size=n,
                           max_size=n))
    return tensors, base, weight


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)


def _extra(name: str, n: int) -> dict:
    return {"epsilon": [0.05] * n} if "della" in name else \
        {"gamma": [0.1] * n} if "breadcrumbs" in name else {}


@LAWS
@given(cases(), st.sampled_from(WITH_STEP), st.booleans(), st.booleans(),
       st.sampled_from([1.0, 0.7]))
def test_density_one_leaves_only_the_election(case, name, normalize, rescale, lambda_):
    """At density 1 no step thins anything (and nothing is drawn from the generator): a row
    without election is task arithmetic, a row with it is TIES, to the bit."""
    tensors, base, weight = case
    n = len(tensors)
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    out = REGISTRY[name].fn(tensors, base, weight=weight, density=[1.0] * n,
                            normalize=normalize, rescale=rescale, lambda_=lambda_,
                            generator=gen, **_extra(name, n))
    if REGISTRY[name].fn.elect:
        want = ties(tensors, base, weight=weight, density=[1.0] * n, normalize=normalize,
                    lambda_=lambda_)
    else:
        want = task_arithmetic(tensors, base, weight=weight, normalize=normalize,
                               lambda_=lambda_)
    assert torch.equal(_bits(out), _bits(want))
    assert torch.equal(gen.get_state(), state)


def test_density_one_control_a_thinning_step_does_change_the_merge():
    x, b = [torch.arange(1.0, 65.0)], torch.zeros(64)
    thinned = REGISTRY["dare_linear"].fn(x, b, weight=[1.0], density=[0.5], rescale=False,
                                         generator=torch.Generator().manual_seed(0))
    assert not torch.equal(thinned, task_arithmetic(x, b, weight=[1.0]))


@LAWS
@given(cases(n_max=1), st.sampled_from([n for n in WITH_STEP if not REGISTRY[n].fn.elect]),
       st.sampled_from([0.3, 0.5, 0.8]))
def test_rescale_restores_each_thinned_vector_l1_norm(case, name, density):
    """One model, weight 1, no election: the merge minus the base is the thinned task vector;
    the step only zeroes entries, and with rescale the kept ones are scaled back to the task
    vector's L1 norm (mergekit's rule)."""
    (x,), base, _ = case
    tau = x - base
    run = lambda rescale: REGISTRY[name].fn(  # noqa: E731
        [x], base, weight=[1.0], density=[density], rescale=rescale, normalize=False,
        generator=torch.Generator().manual_seed(3), **_extra(name, 1)) - base
    plain, scaled = run(False), run(True)
    kept = plain != 0
    assert torch.allclose(plain[kept], tau[kept], rtol=1e-5, atol=1e-6)
    if kept.any() and tau[kept].abs().sum() > 1e-3:
        assert torch.allclose(scaled.abs().sum(), tau.abs().sum(), rtol=1e-4)
        ratio = scaled[kept] / plain[kept]
        assert torch.allclose(ratio, ratio[:1].expand_as(ratio), rtol=1e-4)


def test_rescale_control_without_it_the_norm_shrinks():
    x, b = [torch.arange(1.0, 65.0)], torch.zeros(64)
    plain = REGISTRY["breadcrumbs"].fn(x, b, weight=[1.0], density=[0.5], gamma=[0.1])
    assert plain.abs().sum() < 0.9 * x[0].abs().sum()
