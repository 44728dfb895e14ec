"""device: in evolve.yml and breed.yml: checked before a run, left out of the fingerprint (a
run may move to a GPU), and passed to merging and scoring."""
import pytest
import torch

from kinmerge.search.breed import breed, load_breed_config
from kinmerge.errors import KinmergeError
from kinmerge.search.evolve import evolve, load_evolve_config
from kinmerge.search.evolve.candidate import build_candidate
from kinmerge.core.recipe import load_recipe

BREED = {"pool": ["p1", "p2"], "base_model": "base", "fitness": {"function": "m:f"}}
EVOLVE = {"models": ["a", "b"], "base_model": "base", "fitness": {"function": "m:f"}}


def test_device_is_not_part_of_the_fingerprint_and_old_runs_still_match():
    # the hashes of these configs before `device:` (and breed's `lm_eval:`) existed
    assert load_breed_config(BREED).fingerprint() == "ff08ea80c770b370"
    assert load_breed_config({**BREED, "device": "cuda:1"}).fingerprint() == "ff08ea80c770b370"
    assert load_evolve_config(EVOLVE).fingerprint() == "87ed8f15b2f89493"
    assert load_evolve_config({**EVOLVE, "device": "cuda"}).fingerprint() == "87ed8f15b2f89493"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is there")
def test_a_missing_gpu_is_reported_before_the_run(ps_config, evofam, tmp_path):
    with pytest.raises(KinmergeError, match="CUDA was requested but torch sees no GPU"):
        evolve(ps_config(device="cuda"), tmp_path / "evo")
    assert not (tmp_path / "evo" / "study.db").exists()
    cfg = {"pool": [str(evofam / "ft1"), str(evofam / "ft2")],
           "base_model": str(evofam / "base"), "fitness": {"function": "m:f"},
           "device": "cuda"}
    with pytest.raises(KinmergeError, match="CUDA was requested but torch sees no GPU"):
        breed(cfg, tmp_path / "breed")


def test_the_candidate_is_merged_and_built_on_its_device(evofam, monkeypatch):
    import kinmerge.search.evolve.candidate as candidate

    recipe = load_recipe({"merge_method": "linear", "models": [
        {"model": str(evofam / "ft1"), "parameters": {"weight": 1.0}}]})
    seen = []
    real = candidate.merge_to_memory

    def on_cpu(r, **kw):  # merge arithmetic cannot run on meta; record where it was asked
        seen.append(kw["device"])
        return real(r, **{**kw, "device": "cpu"})

    monkeypatch.setattr(candidate, "merge_to_memory", on_cpu)
    cand = build_candidate(recipe, device="meta")
    assert seen == ["meta"]
    assert {p.device.type for p in cand.model.parameters()} == {"meta"}
    assert cand.device == "meta"
    cpu = build_candidate(recipe, device="cpu", dtype=torch.float64)
    assert {p.dtype for p in cpu.model.parameters()} == {torch.float64}


def test_evolve_inline_leaves_torch_threads_as_they_were(ps_config, tmp_path):
    before = torch.get_num_threads()
    target = 3 if before != 3 else 2
    torch.set_num_threads(target)
    try:
        evolve(ps_config(budget={"trials": 2}, baselines={"grid": False}), tmp_path / "r")
        assert torch.get_num_threads() == target  # jobs ran on 1 thread, then restored
    finally:
        torch.set_num_threads(before)
