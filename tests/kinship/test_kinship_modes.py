"""Signed and absolute cosine, per-tensor mode, per-layer breakdown, tied embeddings,
vocabularies that differ, the ModelKinship compatibility mode, and bounded reads."""
from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from click.testing import CliRunner

from kinmerge.cli import main
from kinmerge.io.reader import ModelReader
from kinmerge.kinship import kinship
from kinmerge.kinship.report import module_kind
from kinmerge.zoo.synthetic import synthetic_llama


def _tensors(path) -> dict[str, torch.Tensor]:
    r = ModelReader(path)
    out = {n: r.get(n) for n in r.names()}
    r.close()
    return out


def test_signed_cosine_by_default_absolute_on_request(kin_family, tmp_path, kin_helpers):
    base, a = _tensors(kin_family["base"]), _tensors(kin_family["a"])
    mirror = kin_helpers["save"](tmp_path / "mirror", {n: 2 * base[n] - a[n] for n in base})
    signed = kinship(kin_family["a"], mirror, base=kin_family["base"])
    absolute = kinship(kin_family["a"], mirror, base=kin_family["base"], absolute_cosine=True)
    assert signed["cs"] == pytest.approx(-1.0, abs=1e-6)
    assert absolute["cs"] == pytest.approx(1.0, abs=1e-6)
    assert signed["pcc"] == absolute["pcc"] == pytest.approx(-1.0, abs=1e-6)
    assert signed.cs == signed["cs"] and set(signed) == {"cs", "pcc", "ed"}


def test_per_tensor_mode_is_the_numel_weighted_mean_without_zero_deltas(kin_family, tmp_path,
                                                                         kin_helpers):
    base, a, b = (_tensors(kin_family[k]) for k in ("base", "a", "b"))
    # the norms of `z` did not move: their cs/pcc are 0/0 and must be left out
    z = {n: (base[n] if "norm" in n else b[n]) for n in base}
    zpath = kin_helpers["save"](tmp_path / "z", z)
    got = kinship(kin_family["a"], zpath, base=kin_family["base"], per_tensor=True)
    num = {m: 0.0 for m in ("cs", "pcc", "ed")}
    den = dict.fromkeys(num, 0)
    for n in base:
        x = (a[n].double() - base[n].double()).numpy().ravel()
        y = (z[n].double() - base[n].double()).numpy().ravel()
        vals = kin_helpers["reference"](x, y) if np.any(y) else {"ed": float(np.linalg.norm(x - y))}
        for m, v in vals.items():
            num[m] += v * x.size
            den[m] += x.size
    assert den["cs"] < den["ed"]  # some tensors were indeed left out
    assert got.mode == "per-tensor"
    for m in num:
        assert got[m] == pytest.approx(num[m] / den[m], rel=1e-9)


def test_per_layer_breakdown_is_exact_per_group(kin_family, kin_helpers):
    r = kinship(kin_family["a"], kin_family["c"], base=kin_family["base"], per_layer=True)
    layers, kinds = r.per_layer["layers"], r.per_layer["kinds"]
    assert [row["group"] for row in layers] == [0, 1, 2, "outside layers"]
    assert [row["group"] for row in kinds] == ["embeddings", "attention", "mlp", "norms"]
    assert sum(row["n"] for row in layers) == sum(row["n"] for row in kinds) == r.n
    names = [n for n in ModelReader(kin_family["base"]).names() if n.startswith("model.layers.1.")]
    fl, ref = kin_helpers["flat"], kin_helpers["reference"]
    base = fl(kin_family["base"], names)
    want = ref(fl(kin_family["a"], names) - base, fl(kin_family["c"], names) - base)
    for m in want:
        assert layers[1][m] == pytest.approx(want[m], rel=1e-9)
    assert module_kind("model.layers.0.self_attn.k_proj.weight") == "attention"
    assert module_kind("model.layers.0.mlp.down_proj.weight") == "mlp"
    assert module_kind("model.layers.0.post_attention_layernorm.weight") == "norms"
    assert module_kind("lm_head.weight") == "embeddings"


@pytest.fixture(scope="module")
def tied(tmp_path_factory):
    root = tmp_path_factory.mktemp("tied")
    kw = dict(layers=2, hidden=32, intermediate=48, vocab=40, tie=True)
    base = synthetic_llama(root / "base", seed=0, **kw)
    a = synthetic_llama(root / "a", base=base, seed=1, delta=0.02, **kw)
    b = synthetic_llama(root / "b", base=base, seed=2, delta=0.02, **kw)
    return str(base), str(a), str(b)


def test_tied_embeddings_count_once(tied, kin_helpers):
    base, a, b = tied
    names = ModelReader(base).names()
    assert "lm_head.weight" not in names
    fl = kin_helpers["flat"]
    B = fl(base, names)
    want = kin_helpers["reference"](fl(a, names) - B, fl(b, names) - B)
    got = kinship(a, b, base=base)
    assert got.n == B.size
    for m in want:
        assert got[m] == pytest.approx(want[m], rel=1e-9)


def test_a_tied_fine_tune_of_an_untied_base_uses_its_embedding(kin_family, tmp_path,
                                                               kin_helpers):
    a = _tensors(kin_family["a"])
    a.pop("lm_head.weight")
    tied_a = kin_helpers["save"](tmp_path / "tied_a", a, tie_word_embeddings=True)
    base = _tensors(kin_family["base"])
    b = _tensors(kin_family["b"])
    names = sorted(base)
    emb = a["model.embed_tokens.weight"]
    x = np.concatenate([(a.get(n, emb).double() - base[n].double()).numpy().ravel()
                        for n in names])
    y = np.concatenate([(b[n].double() - base[n].double()).numpy().ravel() for n in names])
    got = kinship(tied_a, kin_family["b"], base=kin_family["base"])
    want = kin_helpers["reference"](x, y)
    for m in want:
        assert got[m] == pytest.approx(want[m], rel=1e-9)


def test_different_vocab_sizes_compare_shared_rows_and_warn(kin_family, tmp_path, kin_helpers,
                                                            caplog):
    a = _tensors(kin_family["a"])
    g = torch.Generator().manual_seed(5)
    for n in ("model.embed_tokens.weight", "lm_head.weight"):  # 8 new tokens
        a[n] = torch.cat([a[n], torch.randn(8, a[n].shape[1], generator=g)])
    bigger = kin_helpers["save"](tmp_path / "bigger", a, vocab_size=58)
    with caplog.at_level(logging.WARNING):
        got = kinship(bigger, kin_family["b"], base=kin_family["base"])
    text = caplog.text
    assert "vocabulary sizes differ" in text
    assert "model.embed_tokens.weight" in text and "lm_head.weight" in text
    assert "model.layers.0" not in text
    names = ModelReader(kin_family["base"]).names()
    rows = {"model.embed_tokens.weight": 50, "lm_head.weight": 50}
    fl = kin_helpers["flat"]
    B = fl(kin_family["base"], names)
    want = kin_helpers["reference"](fl(bigger, names, rows) - B, fl(kin_family["b"], names) - B)
    assert got.n == B.size and got.notes
    for m in want:
        assert got[m] == pytest.approx(want[m], rel=1e-9)


def _modelkinship_float32(a: str, b: str, base: str) -> dict[str, float]:
    """A float32 reimplementation of ModelKinship's recipe: the tied head counted twice,
    every tensor cut to the base's vocabulary rows, concatenated float32 deltas."""
    rb, ra, r2 = ModelReader(base), ModelReader(a), ModelReader(b)
    emb = "model.embed_tokens.weight"
    names = sorted(rb.names() + ["lm_head.weight"])
    vocab = rb.shape(emb)[0]
    get = lambda r, n: r.get(n if n in r else emb)[:vocab].float()
    d1 = torch.cat([(get(ra, n) - get(rb, n)).reshape(-1) for n in names])
    d2 = torch.cat([(get(r2, n) - get(rb, n)).reshape(-1) for n in names])
    x, y = d1.numpy(), d2.numpy()
    return {"cs": float(np.sqrt(np.dot(x, y) ** 2 / (np.dot(x, x) * np.dot(y, y)))),
            "pcc": float(torch.corrcoef(torch.stack((d1, d2)))[0, 1]),
            "ed": float(torch.dist(d1, d2)), "n": d1.numel()}


def test_compat_mode_reproduces_modelkinship_float32_and_quirks(tied):
    base, a, b = tied
    compat = kinship(a, b, base=base, compat="modelkinship")
    exact = kinship(a, b, base=base)
    want = _modelkinship_float32(a, b, base)
    assert compat.n == want["n"] > exact.n  # head counted twice, mlp rows cut to 40 of 48
    assert compat.absolute_cosine and compat.mode == "modelkinship"
    for m in ("cs", "pcc", "ed"):
        assert compat[m] == pytest.approx(want[m], rel=1e-6)
        assert compat[m] != pytest.approx(abs(exact[m]) if m == "cs" else exact[m], rel=1e-9)


def test_compat_warns_in_one_line_with_a_count(tied, caplog):
    """The quirk cuts most matrices of a small model: one line counts them (issue 12), `-v`
    lists them; the CLI's stderr holds that one line and nothing else."""
    base, a, b = tied
    with caplog.at_level(logging.DEBUG, logger="kinmerge"):
        r = kinship(a, b, base=base, compat="modelkinship")
    want = "--compat modelkinship: 4 tensors cut to the base's 40 vocabulary rows"
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert warnings == [want] and r.notes[0] == want  # gate_proj and up_proj (48 rows) x 2
    detail = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.DEBUG
              and rec.getMessage().startswith("compared rows per tensor: ")]
    assert len(detail) == 1 and detail[0].count("mlp.") == 4
    assert f"model.layers.1.mlp.up_proj.weight (base 48, {a} 48, {b} 48)" in detail[0]
    res = CliRunner().invoke(main, ["kinship", a, b, "--base", base, "--compat",
                                    "modelkinship", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert [ln.strip() for ln in res.stderr.splitlines() if ln.strip()] == ["WARNING  " + want]
    assert "modelkinship, |cos|" in res.stdout


def test_compat_float32_drifts_from_exact_on_millions_of_parameters(tmp_path):
    kw = dict(layers=2, hidden=256, intermediate=1024, vocab=2000)
    base = synthetic_llama(tmp_path / "base", seed=0, **kw)
    a = synthetic_llama(tmp_path / "a", base=base, seed=1, delta=0.01, **kw)
    b = synthetic_llama(tmp_path / "b", base=a, seed=2, delta=0.01, **kw)
    exact = kinship(a, b, base=base)
    compat = kinship(a, b, base=base, compat="modelkinship")
    assert exact.n == compat.n > 2_000_000  # untied, vocab > every dim: no quirk applies
    drift = abs(compat["pcc"] / exact["pcc"] - 1)
    assert 1e-9 < drift < 1e-2


def test_compat_per_tensor_mode(kin_family):
    """Untied, vocabulary larger than every other dim: only float32 separates the two."""
    models = kin_family["a"], kin_family["b"]
    r = kinship(*models, base=kin_family["base"], compat="modelkinship", per_tensor=True,
                metrics="cs pcc")
    exact = kinship(*models, base=kin_family["base"], per_tensor=True, metrics="cs pcc",
                    absolute_cosine=True)
    assert r.mode == "modelkinship-per-tensor" and set(r) == {"cs", "pcc"}
    assert r["cs"] == pytest.approx(exact["cs"], rel=1e-4)
    assert r["pcc"] == pytest.approx(exact["pcc"], rel=1e-3)


def test_reads_are_bounded_by_the_chunk_size(kin_family, monkeypatch):
    from kinmerge.io import safetensors_file
    from kinmerge.kinship import stream

    monkeypatch.setattr(stream, "CHUNK_BYTES", 8 * 4 * 600)  # 600 elements per slice
    sizes = []
    real = safetensors_file._pread_exactly

    def spy(fd, view, offset, path):
        sizes.append(len(view))
        return real(fd, view, offset, path)

    monkeypatch.setattr(safetensors_file, "_pread_exactly", spy)
    r = kinship(kin_family["a"], kin_family["b"], base=kin_family["base"])
    per_chunk = stream.chunk_size(2)
    assert per_chunk == 600 < 50 * 32  # the embedding (50 x 32) is read in three slices
    assert max(sizes) == per_chunk * 4 and sum(sizes) == 3 * 4 * r.n
    assert math.isfinite(r["pcc"])


def test_hub_ids_resolve_through_the_local_cache(kin_family, tmp_path, monkeypatch):
    import shutil

    import huggingface_hub.constants as c

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    for key in ("base", "a", "b"):  # a cache entry laid out by hand: snapshots/<commit>, refs
        d = cache / f"models--org--{key}"
        shutil.copytree(kin_family[key], d / "snapshots" / ("c" * 40))
        (d / "refs").mkdir()
        (d / "refs" / "main").write_text("c" * 40)
    hub = kinship("org/a", "org/b@main", base="org/base")
    local = kinship(kin_family["a"], kin_family["b"], base=kin_family["base"])
    assert hub.metrics == local.metrics and hub.models == ("org/a", "org/b@main")
