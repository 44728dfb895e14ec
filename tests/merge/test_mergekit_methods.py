"""nuslerp, multislerp, karcher, sce, nearswap, arcee_fusion, ram, ramplus_tl: hand-computed
cases on tiny tensors, properties, and how recipes name their inputs and base."""
import math

import pytest
import torch

from kinmerge.errors import KinmergeError, RecipeError
from kinmerge.methods import get_method
from kinmerge.methods.arcee_fusion import arcee_fusion
from kinmerge.methods.karcher import karcher
from kinmerge.methods.multislerp import multislerp
from kinmerge.methods.nearswap import nearswap
from kinmerge.methods.nuslerp import nuslerp
from kinmerge.methods.ram import ram, ramplus_tl
from kinmerge.methods.sce import sce
from kinmerge.core.recipe import load_recipe
from kinmerge.core.validate import inputs_of

T = torch.tensor
R2 = math.sqrt(0.5)


# --- nuslerp ------------------------------------------------------------------------------------
def test_nuslerp_hand_cases():
    a, b = T([1., 0.]), T([0., 1.])  # 90 degrees apart
    torch.testing.assert_close(nuslerp([a, b], None, weight=[1, 1]), T([R2, R2]))
    # t = w2 / (w1 + w2) = 0.75: sin(0.25 * pi/2), sin(0.75 * pi/2)
    torch.testing.assert_close(nuslerp([a, b], None, weight=[1, 3]),
                               T([math.sin(math.pi / 8), math.sin(3 * math.pi / 8)]))
    # weights summing to ~0 fall back to t = 0.5
    torch.testing.assert_close(nuslerp([a, b], None, weight=[1, -1]), T([R2, R2]))
    # colinear vectors are lerped
    torch.testing.assert_close(nuslerp([a, 2 * a], None, weight=[1, 1]), T([1.5, 0.]))

F32 = torch.float32  # the plan's accumulation dtype for float32 work


def test_nuslerp_with_base_interpolates_task_vectors():
    base = T([1., 1.])
    got = nuslerp([base + T([1., 0.]), base + T([0., 1.])], base, weight=[1, 1])
    torch.testing.assert_close(got, base + T([R2, R2]))


def test_nuslerp_per_row_and_per_column():
    a, b = T([[1., 0.], [1., 0.]]), T([[0., 1.], [2., 0.]])
    # rows: row 0 is 90 degrees apart, row 1 colinear
    got = nuslerp([a, b], None, weight=[1, 1], nuslerp_flatten=False)
    torch.testing.assert_close(got, T([[R2, R2], [1.5, 0.]]))
    # columns (row_wise: the vectors run along dim 0)
    got = nuslerp([a.T, b.T], None, weight=[1, 1], nuslerp_flatten=False,
                  nuslerp_row_wise=True)
    torch.testing.assert_close(got, T([[R2, 1.5], [R2, 0.]]))
    # flattened (the default): one angle for the whole tensor, cos = 2 / (sqrt2 * sqrt5)
    theta = math.acos(2 / math.sqrt(10))
    c = math.sin(theta / 2) / math.sin(theta)
    torch.testing.assert_close(nuslerp([a, b], None, weight=[1, 1]), c * (a + b))


# --- multislerp ---------------------------------------------------------------------------------
def test_multislerp_hand_case():
    # unit directions [1,0] and [0,1]: mean direction [r, r]; mean norm (3 + 1) / 2 = 2
    got = multislerp([T([3., 0.]), T([0., 1.])], None, weight=[1, 1])
    torch.testing.assert_close(got, T([2 * R2, 2 * R2]))
    # unnormalized weights scale the norm: 0.5 * 3 + 0.5 * 1 -> with weights 1, 1: 4
    got = multislerp([T([3., 0.]), T([0., 1.])], None, weight=[1, 1], normalize_weights=False)
    torch.testing.assert_close(got, T([4 * R2, 4 * R2]))
    base = T([1., -1.])
    got = multislerp([base + T([3., 0.]), base + T([0., 1.])], base, weight=[1, 1])
    torch.testing.assert_close(got, base + T([2 * R2, 2 * R2]))


def test_multislerp_one_model_and_antipodal_inputs():
    x = T([1., 2.])
    assert multislerp([x], None, weight=[1]) is x
    # two opposite task vectors with equal weights: lerp (their weighted sum)
    torch.testing.assert_close(multislerp([x, -x], None, weight=[1, 1]), T([0., 0.]))
    with pytest.raises(KinmergeError, match="weighted mean direction of the inputs is zero"):
        multislerp([x, -x, x, -x], None, weight=[1, 1, 1, 1])


# --- karcher ------------------------------------------------------------------------------------
def test_karcher_hand_case():
    # symmetric: the mean direction is the bisector; scale = mean norm (1 + 3) / 2
    torch.testing.assert_close(karcher([T([1., 0.]), T([0., 3.])], accum=F32), T([2 * R2, 2 * R2]))
    assert torch.equal(karcher([T([1., 2.])], accum=F32), T([1., 2.]))
    assert torch.equal(karcher([torch.zeros(3), torch.zeros(3)], accum=F32), torch.zeros(3))


def test_karcher_mean_direction_is_stationary():
    """At the Karcher mean the weighted log maps of the directions sum to zero."""
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(16, generator=g, dtype=torch.float64) + 2 for _ in range(3)]
    out = karcher(xs, max_iter=50, tol=1e-12, accum=torch.float64)
    norms = [float(x.norm()) for x in xs]
    assert float(out.norm()) == pytest.approx(sum(norms) / 3, rel=1e-12)
    m = out / out.norm()
    grad = torch.zeros_like(m)
    for x in xs:
        u = x / x.norm()
        cos = torch.dot(m, u).clamp(-1, 1)
        theta = torch.arccos(cos)
        grad += theta / torch.sin(theta) * (u - cos * m) / 3
    assert float(grad.norm()) < 1e-10
    # and it is not the plain normalized mean: the first step moves it
    plain = sum(x / x.norm() for x in xs)
    assert float((plain / plain.norm() - m).norm()) > 1e-6


# --- sce ----------------------------------------------------------------------------------------
def test_sce_hand_case():
    # mean squares 2.5 and 1 -> weights 5/7, 2/7. Entry 0: both agree, (2*5 + 1*2) / 7;
    # entry 1: sum 0 elects +, only model 2 agrees: 1
    got = sce([T([2., -1.]), T([1., 1.])], torch.zeros(2))
    torch.testing.assert_close(got, T([12 / 7, 1.]))


def test_sce_select_topk_keeps_the_most_varying_positions():
    xs = [T([1., 0., 5.]), T([1., 2., -5.]), T([1., -2., 5.])]
    # variances 0, 8/3, 200/9: two positions vary, select_topk 0.5 keeps one (the last);
    # then equal weights, the + sign elected, models 1 and 3 agree: 5
    got = sce(xs, torch.zeros(3), select_topk=0.5)
    torch.testing.assert_close(got, T([0., 0., 5.]))
    assert torch.equal(sce(xs, torch.zeros(3), select_topk=0.5, int8_mask=True), got)
    assert torch.equal(sce(xs, torch.zeros(3), select_topk=0.0), torch.zeros(3))


# --- nearswap -----------------------------------------------------------------------------------
def test_nearswap_hand_cases():
    # w = clamp(t / |d|, 0, 1): near entries are swapped in, far ones move by t
    got = nearswap([T([1.0, 0.5, 4.0])], torch.zeros(3), t=1.0)
    torch.testing.assert_close(got, T([1.0, 0.5, 1.0]))
    got = nearswap([T([1.5, 3.0])], T([1., 1.]), t=0.5)  # d = 0.5, 2 -> w = 1, 0.25
    torch.testing.assert_close(got, T([1.5, 1.5]))
    assert torch.equal(nearswap([T([2., 3.])], T([2., 1.]), t=0.0), T([2., 1.]))


# --- arcee_fusion -------------------------------------------------------------------------------
def test_arcee_fusion_keeps_only_outlying_changes():
    # one row: importance = |d| * KL (one KL per row), so it ranks like |d|. Sorted
    # importances at indices 1, 3, 5 of 8 -> q1 = 1k, median = 3k, q3 = 5k; the threshold
    # 3k + 1.5 * 4k = 9k keeps only the change of 100
    d = T([[3., 0., 5., 1., 100., 2., 4., 6.]])
    base = torch.zeros(1, 8)
    got = arcee_fusion([base + d], base, accum=F32)
    assert torch.equal(got, T([[0., 0., 0., 0., 100., 0., 0., 0.]]))


def test_arcee_fusion_samples_large_tensors_from_the_generator():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(1100, 1000, generator=g)
    other = base + 0.01 * torch.randn(1100, 1000, generator=g)
    runs = [arcee_fusion([other], base, accum=F32, generator=torch.Generator().manual_seed(s))
            for s in (1, 1, 2)]
    assert torch.equal(runs[0], runs[1])  # seeded: reproducible
    kept = [(r != base).float().mean().item() for r in runs]
    assert 0.01 < kept[0] < 0.2 and kept[2] == pytest.approx(kept[0], abs=0.002)
    assert get_method("arcee_fusion").stochastic


# --- ram / ramplus_tl ---------------------------------------------------------------------------
def test_ram_hand_case():
    # entry 0: only model 1 changed it -> 2 whole; entry 1: both -> mean 3; entry 2: none
    xs, base = [T([2., 4., 0.]), T([0., 2., 0.])], torch.zeros(3)
    torch.testing.assert_close(ram(xs, base), T([2., 3., 0.]))
    # changes of at most epsilon do not count
    torch.testing.assert_close(ram([T([2., 4., 1e-6]), T([0., 2., 1.])], base, epsilon=1e-5),
                               T([2., 3., 1.]))


def test_ramplus_tl_amplifies_unique_changes_by_overlap():
    xs, base = [T([2., 4., 0.]), T([0., 2., 0.])], torch.zeros(3)
    # model 1: 1 shared / 1 unique -> rho 1, clamped to alpha 0.2 -> x(1 + 0.1 * 0.2)
    torch.testing.assert_close(ramplus_tl(xs, base, accum=F32), T([2.04, 3., 0.]))
    torch.testing.assert_close(ramplus_tl(xs, base, r=0.5, alpha=2.0, accum=F32), T([3., 3., 0.]))
    torch.testing.assert_close(ramplus_tl(xs, base, r=0.0, accum=F32), ram(xs, base))


# --- recipes: inputs, base --------------------------------------------------------------------
def _models(*names):
    return [{"model": n, "parameters": {"weight": 1.0}} for n in names]


def test_optional_base_methods_take_base_model_as_base():
    r = load_recipe({"merge_method": "nuslerp", "base_model": "b", "models": _models("x", "y")})
    assert inputs_of(r, get_method("nuslerp")) == ["x", "y"]
    r = load_recipe({"merge_method": "nuslerp", "models": _models("x", "y")})
    assert inputs_of(r, get_method("nuslerp")) == ["x", "y"]
    r = load_recipe({"merge_method": "multislerp", "base_model": "b",
                     "models": [{"model": "b"}, *_models("x", "y", "z")]})
    assert inputs_of(r, get_method("multislerp")) == ["x", "y", "z"]
    with pytest.raises(RecipeError, match="nuslerp takes exactly 2 input model"):
        load_recipe({"merge_method": "nuslerp", "models": _models("x", "y", "z")})


def test_base_model_joins_karcher_and_linear_last_as_in_mergekit():
    """The order of a float sum changes its rounding: with the base first, a linear merge
    differed from mergekit's in 25% of elements (1 ulp); last, it is bit-exact."""
    r = load_recipe({"merge_method": "karcher", "base_model": "b",
                     "models": [{"model": "x"}, {"model": "y"}]})
    assert inputs_of(r, get_method("karcher")) == ["x", "y", "b"]
    r = load_recipe({"merge_method": "linear", "base_model": "b", "parameters": {"weight": 1},
                     "models": [{"model": "x"}, {"model": "y"}]})
    assert inputs_of(r, get_method("linear")) == ["x", "y", "b"]


def test_two_model_methods_need_their_base():
    for name, params in (("nearswap", {"t": 0.1}), ("arcee_fusion", {})):
        with pytest.raises(RecipeError, match=f"{name} needs base_model"):
            load_recipe({"merge_method": name, "parameters": params,
                         "models": [{"model": "x"}]})
        r = load_recipe({"merge_method": name, "base_model": "b", "parameters": params,
                         "models": [{"model": "b"}, {"model": "x"}]})
        assert inputs_of(r, get_method(name)) == ["x"]
