"""Issue 10.6: a merge result holding NaN/Inf is never written silently, and kinship names the
tensors holding NaN/Inf instead of printing `nan (undefined)`."""
from __future__ import annotations

import logging

import pytest
import torch
from safetensors.torch import load_file, save_file

import kinmerge
from kinmerge.cli.mergekit_compat import main as kinmerge_yaml
from kinmerge.errors import KinmergeError
from kinmerge.kinship import kinship, kinship_matrix
from kinmerge.core.nonfinite import NonFiniteError, all_finite
from kinmerge.zoo.synthetic import synthetic_llama

from inputs_kit import TINY, assert_clean_failure, cli, recipe, tiny  # noqa: F401

BAD = "model.layers.1.mlp.up_proj.weight"


def poison(model, name=BAD, values=(float("nan"), float("inf"), float("nan"))):
    f = model / "model.safetensors"
    sd = load_file(f)
    sd[name].view(-1)[:len(values)] = torch.tensor(values)
    save_file(sd, f, metadata={"format": "pt"})


def test_nan_input_fails_the_merge_naming_tensor_and_model(tiny):
    poison(tiny["ft"])
    rec = recipe(tiny["root"], tiny["base"], tiny["ft"])
    with pytest.raises(NonFiniteError) as e:
        kinmerge.merge(rec, tiny["root"] / "out")
    assert e.value.what == (f"the merge produced NaN/Inf values in output tensor {BAD}: "
                            f"2 NaN, 1 Inf; input models holding NaN/Inf in it: "
                            f"{tiny['ft']} (2 NaN, 1 Inf)")
    # Python names the keyword, the command line its flag
    assert e.value.fix.endswith("to write the model anyway, pass allow_nonfinite=True")
    assert e.value.cli_fix.endswith("to write the model anyway, pass --allow-nonfinite")
    assert not (tiny["root"] / "out").exists()
    assert not list(tiny["root"].glob(".out*"))  # no temp folder left behind
    with pytest.raises(NonFiniteError):
        kinmerge.merge_to_memory(rec)
    r = cli("merge", rec, tiny["root"] / "out")
    assert_clean_failure(r, f"NaN/Inf values in output tensor {BAD}: 2 NaN, 1 Inf")
    assert "pass --allow-nonfinite" in r.output and "allow_nonfinite=True" not in r.output
    assert_clean_failure(cli(rec, tiny["root"] / "out", prog=kinmerge_yaml),
                         "input models holding NaN/Inf in it")


def test_allow_nonfinite_writes_and_warns(tiny, caplog):
    poison(tiny["ft"])
    rec = recipe(tiny["root"], tiny["base"], tiny["ft"])
    with caplog.at_level(logging.WARNING, logger="kinmerge.core.nonfinite"):
        out = kinmerge.merge(rec, tiny["root"] / "out", allow_nonfinite=True)
    got = load_file(out / "model.safetensors")[BAD]
    assert torch.isnan(got).sum() == 2 and torch.isinf(got).sum() == 1
    assert (f"1 output tensors hold NaN/Inf (written anyway: allow_nonfinite):\n  {BAD}: "
            f"2 NaN, 1 Inf; input models holding NaN/Inf in it: {tiny['ft']}") in caplog.text
    m = kinmerge.merge_to_memory(rec, allow_nonfinite=True)
    assert not all_finite(m.tensors[BAD])
    for prog, args in ((None, ["merge"]), (kinmerge_yaml, [])):
        out = tiny["root"] / f"cli-{bool(prog)}"
        r = cli(*args, rec, out, "--allow-nonfinite", **({"prog": prog} if prog else {}))
        assert r.exit_code == 0, r.output
        assert (out / "model.safetensors").exists()


def test_overflow_without_bad_inputs_is_named_as_such(tiny):
    rec = {"merge_method": "linear", "dtype": "float16", "parameters": {"normalize": False},
           "models": [{"model": str(m), "parameters": {"weight": 1e6}}
                      for m in (tiny["base"], tiny["ft"])]}
    with pytest.raises(NonFiniteError) as e:
        kinmerge.merge_to_memory(rec)
    assert "no input holds NaN/Inf in it (the arithmetic overflowed)" in e.value.what
    assert e.value.fix.startswith("compute in a wider dtype (work_dtype='float32'")
    assert e.value.cli_fix.startswith("compute in a wider dtype (--work-dtype float32")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_finite_scan_finds_any_nan_or_inf(dtype):
    t = torch.zeros(1000, dtype=dtype)
    assert all_finite(t) and all_finite(torch.arange(4)) and all_finite(t[:0])
    assert all_finite(torch.full((4,), 6e4, dtype=dtype))  # large but finite: no overflow
    for pos in (0, 7, 999):
        for v in (float("nan"), float("inf"), -float("inf")):
            u = t.clone()
            u[pos] = v
            assert not all_finite(u), (pos, v)


def test_nan_and_inf_counts_span_chunks(monkeypatch):
    import kinmerge.core.nonfinite as nf
    monkeypatch.setattr(nf, "CHUNK", 1000)
    t = torch.zeros(nf.CHUNK * 2 + 5)
    t[-1], t[0], t[nf.CHUNK] = float("inf"), float("nan"), float("nan")
    assert nf.count(t) == (2, 1)


def test_kinship_names_the_tensors_holding_nan(tiny):
    ft2 = synthetic_llama(tiny["root"] / "models" / "ft2", base=tiny["base"], seed=2, **TINY)
    poison(tiny["ft"])
    poison(tiny["base"], "model.norm.weight", (float("nan"),))
    want = ("kinship is undefined: NaN/Inf values in the weights of\n"
            f"  base {tiny['base']}: model.norm.weight\n"
            f"  model {tiny['ft']}: {BAD}")
    for compat in (None, "modelkinship"):
        with pytest.raises(KinmergeError) as e:
            kinship(str(tiny["ft"]), str(ft2), base=str(tiny["base"]), compat=compat)
        assert e.value.what == want
    with pytest.raises(KinmergeError, match="kinship is undefined: NaN/Inf"):
        kinship_matrix([str(tiny["ft"]), str(ft2)], base=str(tiny["base"]))
    r = cli("kinship", tiny["ft"], ft2, "--base", tiny["base"], "--no-progress")
    assert_clean_failure(r, "kinship is undefined: NaN/Inf values in the weights of", BAD)
    assert "nan (undefined)" not in r.output
