"""Each merge method against hand-computed cases and the formulas of their docstrings."""
import inspect
import math

import pytest
import torch

from kinmerge.errors import KinmergeError
from kinmerge.methods import REGISTRY, get_method
from kinmerge.methods.linear import linear
from kinmerge.methods.passthrough import passthrough
from kinmerge.methods.slerp import slerp
from kinmerge.methods.sparsify import bernoulli_mask, topk_mask
from kinmerge.methods.task_vector import dare_linear, dare_ties, task_arithmetic, ties

T = torch.tensor

F32 = torch.float32  # the plan's accumulation dtype for float32 work


def test_registry_declarations_match_functions():
    for name, m in REGISTRY.items():
        sig = inspect.signature(m.fn)
        kw = {p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY}
        assert "generator" in kw, name
        # parameters with no effect (int8_mask) are accepted but not passed; run options are
        assert ({p.arg for p in m.params if p.effect} | set(m.options)
                == kw - {"generator", "accum"}), name
        assert ("accum" in kw) == (m.accumulate is not None), name  # declared where used
        for p in m.params:
            if not p.effect:
                continue
            default = sig.parameters[p.arg].default
            if not p.required and default not in (inspect.Parameter.empty, None):
                assert default == p.default, (name, p.name)
        assert m.paper and m.summary


def test_unknown_method_lists_known():
    with pytest.raises(KinmergeError, match="(?s)unknown merge method 'tie'.*did you mean 'ties'"):
        get_method("tie")


def test_linear_hand_case():
    a, b = T([[1., 2., 3.], [4., 5., 6.]]), T([[3., 2., 1.], [0., -5., 2.]])
    # (1*a + 3*b) / 4
    want = T([[2.5, 2.0, 1.5], [1.0, -2.5, 3.0]])
    assert torch.equal(linear([a, b], None, weight=[1, 3], accum=F32), want)
    assert torch.equal(linear([a, b], None, weight=[1, 3], normalize=False, accum=F32), a + 3 * b)


def test_uniform_soup_is_mean():
    xs = [torch.randn(4, 5) for _ in range(3)]
    torch.testing.assert_close(linear(xs, None, weight=[1, 1, 1], accum=F32),
                               torch.stack(xs).mean(0))


def test_slerp_endpoints_and_midpoint():
    a, b = T([1., 0.]), T([0., 2.])
    assert torch.equal(slerp([b], a, t=0.0, accum=F32), a)
    torch.testing.assert_close(slerp([b], a, t=1.0, accum=F32), b)
    # 90 degrees apart: sin(pi/4)/sin(pi/2) on each
    s = math.sin(math.pi / 4)
    torch.testing.assert_close(slerp([b], a, t=0.5, accum=F32), T([s, 2 * s]))


def test_slerp_nearly_parallel_falls_back_to_lerp():
    a = T([1., 1., 1.])
    b = a * 2
    torch.testing.assert_close(slerp([b], a, t=0.25, accum=F32), 0.75 * a + 0.25 * b)


def test_slerp_zero_vector_left_unnormalized():
    a, b = torch.zeros(3), T([1., 2., 3.])
    # d = 0 -> omega = pi/2, both coefficients sin(pi/4)
    torch.testing.assert_close(slerp([b], a, t=0.5, accum=F32), math.sin(math.pi / 4) * b)


def test_slerp_bf16_computes_in_float32():
    a, b = torch.randn(64).bfloat16(), torch.randn(64).bfloat16()
    out = slerp([b], a, t=0.3, accum=F32)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, slerp([b.float()], a.float(), t=0.3, accum=F32))


def test_task_arithmetic_hand_case_and_negation():
    base = T([1., 1., 1.])
    x1, x2 = T([2., 1., 0.]), T([1., 3., 1.])
    # base + 0.5*(1*[1,0,-1] + 1*[0,2,0]) = [1.5, 2, 0.5]
    got = task_arithmetic([x1, x2], base, weight=[1, 1], lambda_=0.5)
    assert torch.equal(got, T([1.5, 2.0, 0.5]))
    assert torch.equal(task_arithmetic([x1], base, weight=[-1.0]), T([0., 1., 2.]))
    # normalize divides by the weight sum
    assert torch.equal(task_arithmetic([x1, x2], base, weight=[1, 3], normalize=True),
                       base + (T([1., 0., -1.]) + 3 * T([0., 2., 0.])) / 4)


def test_ties_hand_case():
    base = torch.zeros(4)
    t1, t2, t3 = T([4., -1., 0.5, 2.]), T([-3., -2., 1., 0.1]), T([1., 3., -4., 0.2])
    # trim density 0.5 -> keep 2 largest |.|: t1 [4,0,0,2], t2 [-3,-2,0,0], t3 [0,3,-4,0]
    # elect sign of sums: [1, 1, -4, 2] -> [+, +, -, +]
    # agreeing: e0: 4 -> 4/1; e1: 3 -> 3/1; e2: -4 -> -4; e3: 2 -> 2
    got = ties([t1, t2, t3], base, weight=[1, 1, 1], density=[0.5] * 3)
    assert torch.equal(got, T([4., 3., -4., 2.]))
    # weights scale and normalize: weighted [8,0,0,4], [-3,-2,0,0], [0,3,-4,0]
    got = ties([t1, t2, t3], base, weight=[2, 1, 1], density=[0.5] * 3)
    assert torch.equal(got, T([8. / 2, 3. / 1, -4. / 1, 4. / 2]))
    got = ties([t1, t2, t3], base, weight=[2, 1, 1], density=[0.5] * 3, normalize=False,
               lambda_=0.5)
    assert torch.equal(got, T([4., 1.5, -2., 2.]))


def test_ties_rescale_restores_each_trimmed_l1_norm():
    t1 = T([4., -1., 0.5, 2.])  # density 0.5 keeps 4 and 2: L1 6 -> 7.5, scale 1.25
    got = ties([t1], torch.zeros(4), weight=[1], density=[0.5], rescale=True)
    assert torch.equal(got, T([5., 0., 0., 2.5]))


def test_ties_zero_sum_elects_plus():
    got = ties([T([1.]), T([-1.])], T([0.]), weight=[1, 1], density=[1, 1])
    assert torch.equal(got, T([1.]))


@pytest.mark.parametrize("n,density", [(10, 0.3), (1000, 0.5), (100_000, 0.1), (70_000, 0.77)])
def test_topk_mask_matches_sort(n, density):
    x = torch.randn(n, generator=torch.Generator().manual_seed(n))
    mask = topk_mask(x, density)
    k = int(density * n)
    assert int(mask.sum()) == k
    ref = torch.zeros(n, dtype=torch.bool)
    ref[torch.argsort(x.abs(), descending=True, stable=True)[:k]] = True
    assert torch.equal(mask, ref)


def test_topk_mask_ties_keep_exactly_k():
    x = torch.randn(100_000).bfloat16().float()  # many equal magnitudes
    mask = topk_mask(x, 0.3)
    assert int(mask.sum()) == 30_000
    kept, dropped = x.abs()[mask], x.abs()[~mask]
    assert kept.min() >= dropped.max()


def test_topk_mask_extremes():
    x = torch.randn(10)
    assert topk_mask(x, 1.0).all() and not topk_mask(x, 0.0).any()


def test_dare_density_one_equals_task_arithmetic():
    base = torch.randn(8, 8)
    xs = [base + 0.1 * torch.randn(8, 8) for _ in range(3)]
    g = torch.Generator().manual_seed(0)
    ta = task_arithmetic(xs, base, weight=[0.3, 0.5, 0.2])
    assert torch.equal(dare_linear(xs, base, weight=[0.3, 0.5, 0.2], density=[1, 1, 1],
                                   generator=g), ta)
    assert torch.equal(dare_ties(xs, base, weight=[1, 1, 1], density=[1, 1, 1], generator=g),
                       ties(xs, base, weight=[1, 1, 1], density=[1, 1, 1], normalize=False))


def test_dare_drop_rescales_to_l1_norm_and_is_seeded():
    base = torch.zeros(10_000)
    x = torch.randn(10_000)
    run = lambda s: dare_linear([x], base, weight=[1], density=[0.3],  # noqa: E731
                                generator=torch.Generator().manual_seed(s))
    out = run(1)
    kept = out != 0
    assert 0.27 < kept.float().mean() < 0.33
    torch.testing.assert_close(out.abs().sum(), x.abs().sum())
    # kept entries are scaled copies of the originals
    ratio = out[kept] / x[kept]
    torch.testing.assert_close(ratio, torch.full_like(ratio, float(ratio[0])))
    assert torch.equal(run(1), out) and not torch.equal(run(2), out)
    no_rescale = dare_linear([x], base, weight=[1], density=[0.3], rescale=False,
                             generator=torch.Generator().manual_seed(1))
    assert torch.equal(no_rescale[kept], x[kept])


def test_bernoulli_mask_depends_only_on_generator():
    a = bernoulli_mask(torch.Size([5, 7]), 0.5, torch.Generator().manual_seed(3))
    b = bernoulli_mask(torch.Size([5, 7]), 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_passthrough_scale():
    x = T([1., -2.])
    assert passthrough([x], None) is x
    assert torch.equal(passthrough([x], None, scale=[0.5]), T([0.5, -1.]))


def test_bf16_arithmetic_runs_in_bf16():
    """Weights are cast to the working dtype, as mergekit does: 0.3 becomes 0.30078125."""
    base = torch.zeros(1, dtype=torch.bfloat16)
    x = torch.ones(1, dtype=torch.bfloat16)
    got = task_arithmetic([x], base, weight=[0.3])
    assert got.dtype == torch.bfloat16 and float(got) == float(torch.tensor(0.3).bfloat16())


def test_the_accumulation_width_is_the_plans_argument_not_the_methods_choice():
    """Every method that accumulates wider than its inputs takes that width as `accum` (the
    plan's per-job choice) and computes in it: float32 inputs merged with accum float64 differ
    from the same merge with accum float32, which repeats to the bit (the control)."""
    g = torch.Generator().manual_seed(0)
    x = [torch.randn(64, 64, generator=g) for _ in range(3)]
    base = torch.randn(64, 64, generator=g)
    calls = {"linear": lambda **a: linear(x, None, weight=[1, 2, 0.1], **a),
             "slerp": lambda **a: slerp(x[:1], base, t=0.3, **a),
             "karcher": lambda **a: get_method("karcher").fn(x, None, **a),
             "arcee_fusion": lambda **a: get_method("arcee_fusion").fn(x[:1], base, **a),
             "ramplus_tl": lambda **a: get_method("ramplus_tl").fn(x, base, r=0.3, **a)}
    assert set(calls) == {n for n, m in REGISTRY.items() if m.accumulate is not None}
    for name, call in calls.items():
        wide, narrow = call(accum=torch.float64), call(accum=torch.float32)
        assert torch.equal(narrow, call(accum=torch.float32)), name
        assert not torch.equal(wide.double(), narrow.double()), name


def test_methods_steered_by_norms_run_on_the_cpu_under_cuda():
    """A GPU sums and rounds sin/acos otherwise (measured on an H100: slerp, nuslerp,
    multislerp, karcher, model_stock and sce gave other bytes there), so those methods run on
    the CPU whatever device is asked for; the rest run where they are asked to."""
    import torch

    from kinmerge.core.execute import compute_device
    from kinmerge.methods import REGISTRY

    inexact = {n for n, m in REGISTRY.items() if not m.device_exact}
    assert inexact == {"slerp", "nuslerp", "multislerp", "karcher", "model_stock", "sce"}
    for name, m in REGISTRY.items():
        assert compute_device(m, "cpu") == torch.device("cpu")
        want = "cpu" if name in inexact else "cuda"
        assert compute_device(m, "cuda").type == want, name
        assert compute_device(m, torch.device("cuda", 1)) == (
            torch.device("cpu") if name in inexact else torch.device("cuda", 1))
