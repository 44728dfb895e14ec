"""What an evolution candidate holds on its way through a worker (merge in memory with the
worker cache, module build, scoring), counted as live tensor bytes, not RSS: deterministic.

A worker's goal is the sources (its cache) plus one model: the merged tensors are the
module's parameters (assigned, never copied), nothing keeps a whole-model intermediate,
and a candidate is gone before the next one merges. The candidate is also, byte for byte,
the merge written to disk, and scores the same."""
from __future__ import annotations

import gc
import weakref

import pytest
import torch
import yaml

import kinmerge
from kinmerge.evaluate.candidate import Candidate
from kinmerge.io.reader import ModelReader
from kinmerge.io.writer import InMemorySink
from kinmerge.search import jobs
from kinmerge.search.jobs import InMemory, Job, run_job
from kinmerge.search import memory
from kinmerge.search.memory import _plan
from kinmerge.zoo.synthetic import synthetic_family

SHAPE = dict(layers=4, hidden=128, intermediate=256, vocab=128, heads=4,
             dtype=torch.bfloat16)
IDS = torch.arange(16).unsqueeze(0)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base, fts = synthetic_family(tmp_path_factory.mktemp("cand_memory"), **SHAPE)
    return [base, *fts]


def recipe(models: list[str], seed: int) -> dict:
    return {"merge_method": "dare_ties", "base_model": models[0], "dtype": "bfloat16",
            "seed": seed, "models": [{"model": m, "parameters": {"weight": w, "density": d}}
                                     for m, w, d in zip(models[1:], (0.6, 0.4), (0.5, 0.7))]}


def tensor_bytes(ref: str) -> int:
    with ModelReader(ref) as r:
        return sum(r.get(n).numel() * r.get(n).element_size() for n in r.names())


def live_bytes() -> int:
    """Bytes of every live CPU tensor storage in this process (each storage once)."""
    seen: dict[int, int] = {}
    kinds = (torch.Tensor, torch.nn.Parameter, torch.nn.Buffer)
    for o in gc.get_objects():
        if type(o) in kinds and o.device.type == "cpu":
            s = o.untyped_storage()
            seen[s.data_ptr()] = s.nbytes()
    return sum(seen.values())


def loss(model) -> float:
    with torch.no_grad():
        return float(model(input_ids=IDS, labels=IDS).loss)


def test_candidate_is_the_merge_on_disk_byte_for_byte(models, tmp_path):
    """Module tensors and score of a cached in-memory candidate == the merge written to disk;
    the module's parameters are the merged tensors themselves (no second copy), and so are a
    folder candidate's (breeding's child) the tensors read from it."""
    from kinmerge.io.cache import TensorCache

    cache = TensorCache(10**9)
    kinmerge.merge_to_memory(recipe(models, 1), cache=cache)  # fills the cache
    merged = kinmerge.merge_to_memory(recipe(models, 3), cache=cache)
    assert cache.hits > 0
    cand = Candidate.from_merge(merged)
    module = cand.model
    kinmerge.merge(recipe(models, 3), tmp_path / "disk", write_model_card=False)
    state = module.state_dict()
    with ModelReader(tmp_path / "disk") as disk:
        assert sorted(disk.names()) == sorted(state) == sorted(merged.tensors)
        for name in disk.names():
            want = disk.get(name)
            assert state[name].dtype == want.dtype == torch.bfloat16
            assert torch.equal(state[name].view(torch.uint8), want.view(torch.uint8)), name
            # assigned, not copied: the parameter is the merged tensor's memory
            assert state[name].data_ptr() == merged.tensors[name].data_ptr(), name
    # a breeding child: its folder read back, the module built on the tensors read
    from_disk = Candidate.from_dir(tmp_path / "disk")
    assert loss(module) == loss(from_disk.model)
    read = from_disk.tensors
    assert all(t.data_ptr() == read[n].data_ptr() for n, t in from_disk.model.state_dict().items())
    cand.release(), from_disk.release()


class Probe:
    """A fitness that scores the loss, counting live tensor bytes at the build and inside
    every decoder layer's forward."""

    def __init__(self, peaks: list):
        self.peaks = peaks

    def scores(self, cand, split):
        module = cand.model
        self.peaks.append(("built", live_bytes()))
        hooks = [layer.register_forward_hook(
            lambda *_: self.peaks.append(("forward", live_bytes())))
            for layer in module.model.layers]
        try:
            return {"loss": loss(module)}
        finally:
            for h in hooks:
                h.remove()

    def combine(self, scores):
        return -scores["loss"]


def test_cached_candidate_holds_the_sources_and_one_model(models, monkeypatch):
    """Live tensor bytes through two cached candidates of run_job (the search worker's
    path): at every merged tensor, after the build and inside the forward, at most the
    sources (the cache) + one model + the memory plan's merge scratch; after a job, the
    sources alone. A second copy of the model (a copying build, a whole-model fp32
    intermediate, the last candidate kept through the next merge) is over it."""
    monkeypatch.setattr(jobs, "_CACHE", {})
    sources = sum(tensor_bytes(m) for m in models)
    model = tensor_bytes(models[0])
    plan = _plan(models, recipe(models, 0), "cpu", 1, False, sources, inputs=3)
    assert (plan.cache, plan.model) == (sources, model)
    assert plan.merge < model / 2  # so that one extra model cannot hide in the scratch

    peaks: list = []
    add = InMemorySink.add

    def counting_add(self, name, tensor):
        add(self, name, tensor)
        if len(self.tensors) % 3 == 0:  # what is held only grows along the merge
            peaks.append(("merge", live_bytes()))

    monkeypatch.setattr(InMemorySink, "add", counting_add)
    gc.collect()
    before = live_bytes()
    results = []
    for seed in (1, 2):
        peaks.clear()
        job = Job(f"c{seed}", InMemory(yaml.safe_dump(recipe(models, seed)),
                                       cache_bytes=sources), Probe(peaks))
        results.append(run_job(job))
        after = live_bytes() - before
        held = {k: max(v for kk, v in peaks if kk == k) - before
                for k in ("merge", "built", "forward")}
        bound = plan.cache + plan.model + plan.merge
        assert all(v <= bound for v in held.values()), (held, bound)
        # the build adds nothing to the merge but the rotary tables (a few hundred bytes)
        assert held["built"] <= sources + model + 1024
        assert after <= sources  # the candidate is gone; the cache stays
    assert jobs._CACHE and next(iter(jobs._CACHE.values())).hits > 0
    assert results[0].fitness != results[1].fitness


def test_a_released_candidate_holds_no_tensors(models):
    """A reference that outlives the job (a library's stored traceback pinning the frames
    of a lazy import: optuna keeps its ImportErrors) must not keep the model alive."""
    merged = kinmerge.merge_to_memory(recipe(models, 1))
    gone = weakref.ref(merged.tensors["model.layers.0.mlp.up_proj.weight"])
    pinned = Candidate.from_merge(merged)
    pinned.model
    pinned.release()
    del merged
    assert gone() is None and pinned.merged is None and pinned._module is None


def test_run_job_releases_and_trims_also_when_scoring_fails(models, monkeypatch):
    """run_job releases its candidate and trims malloc's heap after every job, also when the
    fitness raises (the raised error's traceback must not pin the model)."""
    calls = []
    monkeypatch.setattr(memory, "trim_heap", lambda: calls.append("trim") or True)
    released = []
    release = Candidate.release
    monkeypatch.setattr(Candidate, "release",
                        lambda self: released.append(self) or release(self))

    class Fails:
        def scores(self, cand, split):
            cand.model
            raise RuntimeError("the fitness broke")

        def combine(self, scores):
            raise AssertionError("not reached")

    job = Job("f", InMemory(yaml.safe_dump(recipe(models, 1)), cache_bytes=0), Fails())
    with pytest.raises(RuntimeError, match="the fitness broke"):
        run_job(job)
    assert calls == ["trim"] and len(released) == 1
    assert released[0].merged is None and released[0]._module is None


def test_trim_heap_calls_malloc_trim(monkeypatch):
    """glibc's malloc_trim(0); False, and nothing raised, where the C library has none."""
    calls = []

    class Libc:
        def malloc_trim(self, pad):
            calls.append(pad)
            return 1

    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: Libc())
    assert memory.trim_heap() is True and calls == [0]
    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: object())
    assert memory.trim_heap() is False
