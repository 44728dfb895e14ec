"""Exactness: the streamed float64 statistics against numpy float64 on the concatenated delta
vectors, relative error <= 1e-9, on several-million-parameter models in fp32 and bf16, with
varied deltas: noise at many scales, correlated, large-mean, zero and constant."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kinmerge.kinship import kinship, kinship_matrix
from kinmerge.kinship.stats import Moments, chunk_moments, total

# ~3.2M parameters: 2 layers of a 256-wide llama with a 2000-token vocabulary
SHAPES = {"model.embed_tokens.weight": (2000, 256), "lm_head.weight": (2000, 256),
          "model.norm.weight": (256,)}
for _i in range(2):
    _p = f"model.layers.{_i}."
    SHAPES.update({_p + "input_layernorm.weight": (256,),
                   _p + "post_attention_layernorm.weight": (256,)})
    SHAPES.update({_p + f"self_attn.{k}_proj.weight": (256, 256) for k in "qkvo"})
    SHAPES.update({_p + f"mlp.{k}_proj.weight": (1024 if k != "down" else 256,
                                                 256 if k != "down" else 1024)
                   for k in ("gate", "up", "down")})
NAMES = sorted(SHAPES)
CASES = ["independent", "correlated", "anticorrelated", "large_mean", "related_closely"]


def _deltas(case: str, name: str, shape, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The two models' deltas for one tensor; norms get zero or constant deltas."""
    if name.endswith("input_layernorm.weight"):  # zero in both: left out of per-tensor cs/pcc
        return torch.zeros(shape), torch.zeros(shape)
    if name.endswith("norm.weight"):  # constant: 2**-7 is exact in bf16 around 1.0
        return torch.full(shape, 2.0**-7), torch.full(shape, -(2.0**-6))
    scale = 10.0 ** torch.empty(1).uniform_(-4, -1, generator=g).item()  # varies per tensor
    a = torch.randn(shape, generator=g) * scale
    e = torch.randn(shape, generator=g) * scale
    if case == "independent":
        b = e
    elif case == "correlated":
        b = 0.6 * a + 0.8 * e
    elif case == "anticorrelated":
        b = -0.9 * a + 0.3 * e
    elif case == "large_mean":  # a shifted delta: Pearson from raw sums would cancel
        a, b = a + 40 * scale, 0.3 * a + e + 25 * scale
    else:  # the two fine-tunes nearly agree: ed from sum x^2 - 2 sum xy + sum y^2 would cancel
        b = a + 1e-3 * e
    return a, b


def _build(root, case: str, dtype: torch.dtype, seed: int, save):
    g = torch.Generator().manual_seed(seed)
    base, fa, fb = {}, {}, {}
    for name in NAMES:
        shape = SHAPES[name]
        norm = name.endswith("norm.weight")
        w = torch.ones(shape) if norm else torch.randn(shape, generator=g) * 0.05
        da, db = _deltas(case, name, shape, g)
        base[name], fa[name], fb[name] = w.to(dtype), (w + da).to(dtype), (w + db).to(dtype)
    return (save(root / "base", base), save(root / "a", fa), save(root / "b", fb))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("case", CASES)
def test_matches_float64_concatenated_reference(tmp_path, kin_helpers, case, dtype):
    base, a, b = _build(tmp_path, case, dtype, seed=CASES.index(case), save=kin_helpers["save"])
    flat, ref = kin_helpers["flat"], kin_helpers["reference"]
    B = flat(base, NAMES)
    x, y = flat(a, NAMES) - B, flat(b, NAMES) - B
    assert x.size > 3_000_000
    want = ref(x, y)
    got = kinship(a, b, base=base)
    assert got.n == x.size
    for m in ("cs", "pcc", "ed"):
        assert got[m] == pytest.approx(want[m], rel=1e-9, abs=0), (m, got[m], want[m])
    assert got.norms[a] == pytest.approx(np.linalg.norm(x), rel=1e-12)


def test_chunking_does_not_change_the_numbers(tmp_path, kin_helpers, small_chunks):
    """Many slices per tensor (5000 elements each) agree with the reference just as well."""
    base, a, b = _build(tmp_path, "large_mean", torch.bfloat16, seed=7, save=kin_helpers["save"])
    B = kin_helpers["flat"](base, NAMES)
    want = kin_helpers["reference"](kin_helpers["flat"](a, NAMES) - B,
                                    kin_helpers["flat"](b, NAMES) - B)
    got = kinship(a, b, base=base)
    for m in want:
        assert got[m] == pytest.approx(want[m], rel=1e-9, abs=0)


def test_pickled_bin_checkpoint_gives_the_same_numbers(kin_family, tmp_path, kin_helpers):
    from kinmerge.io.reader import ModelReader

    r = ModelReader(kin_family["a"])
    as_bin = kin_helpers["save"](tmp_path / "a_bin", {n: r.get(n) for n in r.names()},
                                 bin_format=True)
    r.close()
    st = kinship(kin_family["a"], kin_family["b"], base=kin_family["base"])
    pt = kinship(as_bin, kin_family["b"], base=kin_family["base"])
    assert pt.metrics == pytest.approx(st.metrics, rel=1e-14)


def test_matrix_equals_pairwise_and_three_model_kinship_is_the_pair_mean(kin_family):
    ms = [kin_family[k] for k in "abc"]
    m = kinship_matrix(ms, base=kin_family["base"], metrics="cs,pcc,ed")
    for i in range(3):
        assert m["cs"][i, i] == pytest.approx(1.0) and m["ed"][i, i] == 0.0
        for j in range(i + 1, 3):
            pair = kinship(ms[i], ms[j], base=kin_family["base"])
            for k in ("cs", "pcc", "ed"):
                assert m[k][i, j] == pytest.approx(pair[k], rel=1e-12)
                assert m[k][j, i] == m[k][i, j]
    three = kinship(*ms, base=kin_family["base"], metrics="pcc")
    assert three["pcc"] == pytest.approx(m.mean_pairwise("pcc"), rel=1e-12)
    # c descends from a: the related pair is the most similar one
    assert m["pcc"][0, 2] > 0.3 > abs(m["pcc"][0, 1])


def test_moments_merge_is_the_moments_of_the_union():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 1000, generator=g, dtype=torch.float64) + 5.0
    whole = chunk_moments(x.clone())
    parts = total(chunk_moments(x[:, s:s + 97].clone()) for s in range(0, 1000, 97))
    assert parts.n == whole.n == 1000
    np.testing.assert_allclose(parts.mean, x.mean(1).numpy(), rtol=1e-14)
    centred = (x - x.mean(1, keepdim=True)).numpy()
    np.testing.assert_allclose(parts.comoment, centred @ centred.T, rtol=1e-11)
    np.testing.assert_allclose(parts.gram(), (x @ x.T).numpy(), rtol=1e-12)
    assert parts.sqdist[0, 1] == pytest.approx(float(((x[0] - x[1]) ** 2).sum()), rel=1e-13)
    assert Moments.zeros(3) + whole is whole


def test_constant_and_zero_rows_have_exactly_zero_spread():
    x = torch.tensor([[0.1] * 7, [0.0] * 7, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]],
                     dtype=torch.float64)
    m = chunk_moments(x.clone())
    assert m.comoment[0, 0] == 0.0 and m.comoment[1, 1] == 0.0 and m.comoment[0, 2] == 0.0
    assert m.comoment[2, 2] == pytest.approx(28.0)  # sum (i - 4)^2 for i = 1..7
    assert m.mean[0] == 0.1 and m.sqdist[0, 1] == pytest.approx(0.07)


def test_a_zero_delta_gives_undefined_similarity_not_zero(kin_family):
    r = kinship(kin_family["base"], kin_family["a"], base=kin_family["base"])
    assert math.isnan(r["cs"]) and math.isnan(r["pcc"])
    assert r["ed"] == pytest.approx(r.norms[kin_family["a"]], rel=1e-12)
    assert r.to_dict()["cs"] is None


def test_undefined_values_are_null_in_strict_json(kin_family):
    import json

    m = kinship_matrix([kin_family["a"], kin_family["base"]], base=kin_family["base"])
    d = json.loads(json.dumps(m.to_dict(), allow_nan=False))
    assert d["cs"][0][1] is None and d["mean_pairwise"]["cs"] is None
    assert d["ed"][0][1] == pytest.approx(m.norms[kin_family["a"]])
