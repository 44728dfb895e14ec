"""The worker cache (kinmerge.io.cache): merges read through it are byte for byte the merges
read from disk, it never holds more than its budget, a merged model never aliases it, a
rewritten model is read afresh; evolve with a cache is the run without one. And the memory
plan (kinmerge.search.memory): its numbers, and a run that cannot fit refused before it
starts."""
from __future__ import annotations

import csv
import math
import shutil

import pytest
import torch
from safetensors import safe_open

import kinmerge
from kinmerge.errors import KinmergeError
from kinmerge.io.cache import TensorCache
from kinmerge.search.evolve import evolve
from kinmerge.search.evolve.config import load_evolve_config
from kinmerge.search.memory import WORKER_RUNTIME, MemoryPlan, memory_plan
from kinmerge.zoo.synthetic import synthetic_llama

METHODS = {
    "linear": {"weight": 0.5},
    "slerp": {"t": 0.3},
    "task_arithmetic": {"weight": 0.7},
    "ties": {"weight": 0.6, "density": 0.5},
    "dare_ties": {"weight": 0.6, "density": 0.5},
    "breadcrumbs": {"weight": 0.6, "density": 0.8, "gamma": 0.05},
    "della": {"weight": 0.6, "density": 0.5, "epsilon": 0.1},
}


def recipe(fam, method: str, dtype: str = "float32") -> dict:
    models = fam["ft"][:2]
    r = {"merge_method": method, "dtype": dtype, "seed": 3,
         "models": [{"model": m, "parameters": METHODS[method]} for m in models]}
    if method == "slerp":
        r["base_model"] = models[0]
        r["parameters"] = r["models"][0]["parameters"]
        r["models"] = [{"model": m} for m in models]
    elif method != "linear":
        r["base_model"] = fam["base"]
    return r


def as_bytes(merged) -> dict[str, bytes]:
    return {k: v.view(torch.uint8).numpy().tobytes() if v.numel() else b""
            for k, v in merged.tensors.items()}


def stored_bytes(path: str) -> int:
    with safe_open(f"{path}/model.safetensors", "pt") as f:
        return sum(f.get_tensor(k).numel() * f.get_tensor(k).element_size() for k in f.keys())


@pytest.mark.parametrize("which", ["family", "family_bf16"])
def test_cached_merges_are_the_uncached_bytes(which, request):
    fam = request.getfixturevalue(which)
    dtype = "bfloat16" if which == "family_bf16" else "float32"
    plain = {m: as_bytes(kinmerge.merge_to_memory(recipe(fam, m, dtype))) for m in METHODS}
    cache = TensorCache(10**9)
    for rnd in range(2):  # the first round fills the cache, the second reads only from it
        misses = cache.misses
        for m in METHODS:
            assert as_bytes(kinmerge.merge_to_memory(recipe(fam, m, dtype), cache=cache)) \
                == plain[m], (m, rnd)
        if rnd:
            assert cache.misses == misses  # nothing read from disk in the second round
    n_tensors = len(kinmerge.merge_to_memory(recipe(fam, "linear", dtype)).tensors)
    assert len(cache) == cache.misses == 3 * n_tensors  # base + two fine-tunes, once each
    assert cache.bytes == sum(stored_bytes(p) for p in [fam["base"], *fam["ft"][:2]])


def test_the_budget_bounds_the_cache(family):
    total = sum(stored_bytes(p) for p in [family["base"], *family["ft"][:2]])
    plain = as_bytes(kinmerge.merge_to_memory(recipe(family, "ties")))
    for budget in (0, total // 2, total - 1):
        cache = TensorCache(budget)
        for _ in range(2):
            assert as_bytes(kinmerge.merge_to_memory(recipe(family, "ties"), cache=cache)) \
                == plain
            assert cache.bytes <= budget
        assert (cache.hits > 0) == (budget > 0)
    with pytest.raises(ValueError, match="bytes >= 0"):
        TensorCache(-1)


def test_models_not_in_use_give_way(family):
    """A full cache drops the tensors of models the current merge does not use."""
    one = stored_bytes(family["base"])
    cache = TensorCache(2 * one)
    kinmerge.merge_to_memory(recipe(family, "linear"), cache=cache)  # ft1, ft2: full
    assert cache.bytes == 2 * one
    r = recipe(family, "linear")
    r["models"] = [{"model": family["ft"][2], "parameters": {"weight": 1.0}}]
    kinmerge.merge_to_memory(r, cache=cache)  # ft3 only: ft1 and ft2 make room
    assert cache.bytes == one and {s[0] for s, _ in cache._entries} == {family["ft"][2]}


def test_a_merged_model_never_shares_the_cache(family):
    """A one-model linear merge returns its input unchanged: the core copies it, so editing
    the merged model (a fitness may) cannot change the next candidate."""
    r = recipe(family, "linear")
    r["models"] = [{"model": family["ft"][0], "parameters": {"weight": 1.0}}]
    cache = TensorCache(10**9)
    first = kinmerge.merge_to_memory(r, cache=cache)
    want = as_bytes(first)
    kept = {t.untyped_storage().data_ptr() for t in cache._entries.values()}
    assert not kept & {t.untyped_storage().data_ptr() for t in first.tensors.values()}
    for t in first.tensors.values():
        t.zero_() if t.is_floating_point() else None
    assert as_bytes(kinmerge.merge_to_memory(r, cache=cache)) == want


def test_a_rewritten_model_is_read_again(family, tmp_path):
    ft = tmp_path / "ft"
    shutil.copytree(family["ft"][0], ft)
    r = recipe(family, "task_arithmetic")
    r["models"][0]["model"] = str(ft)
    cache = TensorCache(10**9)
    before = as_bytes(kinmerge.merge_to_memory(r, cache=cache))
    shutil.rmtree(ft)
    synthetic_llama(ft, layers=3, hidden=16, intermediate=24, vocab=40,
                    base=family["base"], seed=11, delta=0.05)
    after = as_bytes(kinmerge.merge_to_memory(r, cache=cache))
    assert after != before and after == as_bytes(kinmerge.merge_to_memory(r))


def test_evolve_with_a_worker_cache_is_the_run_without(ps_config, tmp_path):
    runs = {}
    for cache in (0, "1M"):
        evolve(ps_config(budget={"trials": 8}, worker_cache=cache), tmp_path / str(cache))
        with open(tmp_path / str(cache) / "history.csv") as f:
            runs[cache] = [(r["trial"], r["fitness"], r["genome"], r["recipe"])
                           for r in csv.DictReader(f)]
    assert runs[0] == runs["1M"] and len(runs[0]) == 8
    # the cache is no part of what a resumed run must match
    res = evolve(ps_config(budget={"trials": 8}, worker_cache="2M"), tmp_path / "0",
                 resume=True, trials=9)
    assert res.summary.trials == 9


@pytest.mark.parametrize("bad", ["lots", -5, "0.0.1GB", True, [1]])
def test_worker_cache_must_be_a_size(ps_config, bad):
    with pytest.raises(KinmergeError, match="worker_cache"):
        load_evolve_config(ps_config(worker_cache=bad))


def test_the_memory_plan_counts_the_models(ps_config, evofam):
    cfg = load_evolve_config(ps_config(worker_cache="5GB"))
    plan = memory_plan(cfg, workers=3)
    sizes = {m: stored_bytes(str(evofam / m)) for m in ("base", "ft1", "ft2")}
    assert plan.sources == sum(sizes.values())
    assert plan.cache == plan.sources  # capped: it never holds more than the sources
    assert plan.model == sizes["ft1"]  # float32 in, float32 out
    with safe_open(str(evofam / "base" / "model.safetensors"), "pt") as f:
        biggest = max(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    assert plan.merge == biggest * 4 * 7  # 3 inputs cast, 3 task vectors, the output
    assert plan.runtime == WORKER_RUNTIME and plan.workers == 3
    assert plan.total == 3 * (WORKER_RUNTIME + plan.cache + plan.model + plan.merge)
    assert plan.available is not None and plan.available > 0


def test_a_plan_that_cannot_fit_names_its_numbers():
    plan = MemoryPlan("cpu", 2, 600_000_000, 5_000_000_000, 1_700_000_000, 300_000_000,
                      5_100_000_000, 10_000_000_000)
    with pytest.raises(KinmergeError) as e:
        plan.check()
    assert str(e.value).splitlines()[0] == (
        "this run cannot fit: memory plan on cpu: 7.60 GB per worker (0.60 runtime + 5.00 "
        "worker cache + 1.70 model + 0.30 merge scratch) x 2 workers = 15.20 GB; 10.00 GB "
        "available (sources 5.10 GB)")
    assert "fix: lower worker_cache (the sources are 5.10 GB" in str(e.value)
    MemoryPlan("cpu", 1, 1, 1, 1, 1, 1, 4).check()  # fits exactly
    MemoryPlan("cpu", 1, 1, 1, 1, 1, 1, None).check()  # nothing to check against


def test_evolve_refuses_a_run_that_cannot_fit_before_writing(ps_config, tmp_path, monkeypatch):
    # 256 workers is the most --workers allows; the machine is given 1 GB, which their
    # runtimes alone (0.5 GB each) exceed
    import kinmerge.search.memory as memory

    monkeypatch.setattr(memory, "_available", lambda device: 10**9)
    with pytest.raises(KinmergeError, match=r"this run cannot fit: .* x 256 workers"):
        evolve(ps_config(), tmp_path / "run", workers=256)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("method,device,where", [
    ("slerp", "cuda", "cpu"), ("slerp", "cuda:1", "cpu"), ("linear", "cuda", "cuda"),
    ("dare_ties", "cuda:1", "cuda:1"), ("slerp", "cpu", "cpu")])
def test_a_worker_caches_sources_where_the_method_computes(family, method, device, where,
                                                          monkeypatch):
    """A candidate of a method that computes on the CPU under cuda (Method.device_exact:
    False) reads a CPU cache, not a GPU cache it would copy back to the CPU every time."""
    import yaml

    from kinmerge.search import jobs

    asked: list[tuple[str, int]] = []
    monkeypatch.setattr(jobs, "_cache", lambda d, b: asked.append((d, b)) or "the cache")
    monkeypatch.setattr("kinmerge.search.evolve.candidate.build_candidate",
                        lambda r, **kw: (r.merge_method, kw["device"], kw["cache"]))
    job = jobs.Job(key="t", model=jobs.InMemory(yaml.safe_dump(recipe(family, method)),
                                                cache_bytes=123), fitness="{}",
                   device=device)
    assert jobs._candidate(job) == (method, device, "the cache")
    assert asked == [(where, 123)]


@pytest.mark.parametrize("method,where", [("slerp", "cpu, for slerp"), ("linear", "cuda")])
def test_the_memory_plan_counts_the_host_for_a_method_that_computes_there(
        ps_config, method, where, monkeypatch):
    """Under cuda a norm/angle method merges on the CPU (its cache and scratch in host
    memory), so the plan checks the host's memory, runtime included, not the GPU's."""
    import kinmerge.search.memory as memory

    monkeypatch.setattr(memory, "_available", lambda device: {"cuda": 7}.get(device, 10**12))
    template = {"merge_method": method, "dtype": "float32"}
    params = {"t": [0, 1]} if method == "slerp" else {"weight": [0, 1]}
    cfg = load_evolve_config(ps_config(template=template, device="cuda", worker_cache="1M",
                                       search={"params": params}))
    plan = memory_plan(cfg)
    assert (plan.device, plan.runtime > 0) == (where, where != "cuda")
    assert plan.available == (7 if where == "cuda" else 10**12)
