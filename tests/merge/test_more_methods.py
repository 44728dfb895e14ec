"""model_stock, breadcrumbs(_ties), della(_linear): hand-computed cases and properties."""
import math

import pytest
import torch

from kinmerge.errors import KinmergeError, RecipeError
from kinmerge.methods.breadcrumbs import breadcrumb_mask
from kinmerge.methods.della import keep_probabilities
from kinmerge.methods.model_stock import model_stock
from kinmerge.methods.task_vector import (breadcrumbs, breadcrumbs_ties, della, della_linear,
                                          task_arithmetic, ties)
from kinmerge.core.recipe import load_recipe

T = torch.tensor


def test_model_stock_hand_case():
    base = torch.zeros(2)
    a, b = T([1.0, 0.0]), T([0.5, math.sqrt(3) / 2])  # 60 degrees apart: cos = 0.5
    t = 2 * 0.5 / (1 + 0.5)  # k cos / (1 + (k-1) cos) = 2/3
    torch.testing.assert_close(model_stock([a, b], base), t * (a + b) / 2)


def test_model_stock_identical_models_reach_them():
    base, x = torch.zeros(3), T([1., 2., 3.])
    torch.testing.assert_close(model_stock([x, x.clone()], base), x)


def test_model_stock_needs_two_models():
    with pytest.raises(RecipeError, match="model_stock needs at least 2 input model"):
        load_recipe({"merge_method": "model_stock", "base_model": "b",
                     "models": [{"model": "a"}]})


def test_breadcrumb_mask_drops_outliers_and_small():
    x = T([9., 1., 3., 2., -8., 0.5, 4., -6., 0.1, 7.])
    # gamma 0.2 drops the 2 largest (9, -8); density 0.4 keeps the next 4 (7, -6, 4, 3)
    keep = breadcrumb_mask(x, 0.4, 0.2)
    assert sorted(x[keep].tolist()) == [-6., 3., 4., 7.]


def test_breadcrumbs_without_drop_is_task_arithmetic():
    base = torch.randn(5, 5)
    xs = [base + torch.randn(5, 5) for _ in range(2)]
    got = breadcrumbs(xs, base, weight=[0.5, 1.0], density=[1, 1], gamma=[0, 0])
    assert torch.equal(got, task_arithmetic(xs, base, weight=[0.5, 1.0]))
    got = breadcrumbs_ties(xs, base, weight=[1, 1], density=[1, 1], gamma=[0, 0])
    # mergekit's default for breadcrumbs_ties: normalize false (ties: true)
    assert torch.equal(got, ties(xs, base, weight=[1, 1], density=[1, 1], normalize=False))


def test_della_keep_probabilities_by_rank():
    # ranks by |x|: 3 -> 2 (largest), 1 -> 0, 2 -> 1; p = 0.4 + rank / 2 * 0.2
    p = keep_probabilities(T([[3., -1., 2.]]), density=0.5, epsilon=0.1)
    torch.testing.assert_close(p, T([[0.6, 0.4, 0.5]]))


def test_della_rescales_to_the_l1_norm_and_is_seeded():
    """mergekit's rescale: the kept task vector scaled back to the original's L1 norm."""
    base, x = torch.zeros(1, 64), torch.randn(1, 64)
    runs = [della_linear([x], base, weight=[1], density=[0.5], epsilon=[0.2],
                         generator=torch.Generator().manual_seed(s)) for s in range(400)]
    for r in runs[:20]:
        torch.testing.assert_close(r.abs().sum(), x.abs().sum())
        kept = r != 0
        torch.testing.assert_close(r[kept] / x[kept], (r[kept] / x[kept])[:1].expand(
            int(kept.sum())))  # one factor for all kept entries
    again = della_linear([x], base, weight=[1], density=[0.5], epsilon=[0.2],
                         generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, runs[0])
    kept = runs[0] != 0
    assert 0.2 < kept.float().mean() < 0.8


def test_della_density_one_is_ties():
    base = torch.randn(4, 4)
    xs = [base + torch.randn(4, 4) for _ in range(2)]
    g = torch.Generator().manual_seed(0)
    assert torch.equal(della(xs, base, weight=[1, 1], density=[1, 1], epsilon=[0.1, 0.1],
                             generator=g), ties(xs, base, weight=[1, 1], density=[1, 1]))


def test_della_rejects_bad_epsilon():
    with pytest.raises(KinmergeError, match="della needs 0 < density ± epsilon < 1"):
        keep_probabilities(torch.ones(3), density=0.95, epsilon=0.1)
