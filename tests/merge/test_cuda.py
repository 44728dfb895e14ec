"""`--device cuda` gives the bytes `--device cpu` gives: random masks are drawn on the CPU from
the per-tensor generator, top-k ties break by flat position on both devices, the L1 sums of
the rescale are taken on the CPU, the methods steered by norms and angles run on the CPU
(`Method.device_exact`), and the output is cast and moved back before writing. These tests
run only where torch sees a GPU (benchmarks/gpu_check.sh runs them)."""
from __future__ import annotations

import json
import os

import pytest
import torch
from method_kit import DTYPES, recipe

import kinmerge
from kinmerge.core.execute import run_job
from kinmerge.methods import REGISTRY
from kinmerge.methods.sparsify import bernoulli_mask, topk_mask

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs CUDA: torch sees no GPU on this machine")


def _recipe(method: str, fam: dict, dtype: str) -> dict:
    params = {"weight": 0.6, "density": 0.5} if method in ("ties", "dare_ties") else \
        {"weight": 0.6}
    models = [{"model": m, "parameters": params} for m in fam["ft"][:2]]
    if method == "slerp":
        return {"merge_method": "slerp", "base_model": fam["ft"][0], "dtype": dtype,
                "models": [{"model": fam["ft"][0]}, {"model": fam["ft"][1]}],
                "parameters": {"t": [0, 0.3, 1]}}
    r = {"merge_method": method, "dtype": dtype, "models": models, "seed": 3}
    if method != "linear":
        r["base_model"] = fam["base"]
    return r


@pytest.mark.parametrize("method", ["linear", "task_arithmetic", "ties", "dare_ties", "slerp"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_merge_is_byte_identical_to_cpu(family, method, dtype):
    r = _recipe(method, family, dtype)
    cpu = kinmerge.merge_to_memory(r, device="cpu").tensors
    gpu = kinmerge.merge_to_memory(r, device="cuda").tensors
    assert list(cpu) == list(gpu)
    for name, t in cpu.items():
        g = gpu[name]
        assert g.device.type == "cpu" and g.dtype == t.dtype, name
        assert torch.equal(t.view(torch.uint8) if t.dim() else t, g.view(torch.uint8)
                           if g.dim() else g), f"{method} {dtype}: {name} differs"


def test_merge_to_disk_on_cuda_matches_cpu_files(family, tmp_path):
    r = _recipe("dare_ties", family, "bfloat16")
    a = kinmerge.merge(r, tmp_path / "cpu", device="cpu")
    b = kinmerge.merge(r, tmp_path / "gpu", device="cuda")
    for f in sorted(a.glob("*.safetensors")):
        assert f.read_bytes() == (b / f.name).read_bytes(), f.name


def test_masks_do_not_depend_on_device():
    g = lambda: torch.Generator().manual_seed(11)  # noqa: E731 (CPU, as run_job makes it)
    assert torch.equal(bernoulli_mask(torch.Size([64, 33]), 0.3, g()),
                       bernoulli_mask(torch.Size([64, 33]), 0.3, g()))
    x = torch.randn(4096, generator=g()).to(torch.bfloat16)
    x[::7] = x[0]  # many equal magnitudes at the threshold: ties break by position
    for dt in (torch.bfloat16, torch.float32):
        assert torch.equal(topk_mask(x.to(dt), 0.3), topk_mask(x.to(dt).cuda(), 0.3).cpu())


def test_run_job_returns_cpu_tensors_in_the_output_dtype(family):
    p = kinmerge.make_plan(_recipe("dare_ties", family, "bfloat16"))
    from kinmerge.core.merge import open_models
    from kinmerge.core.execute import _load

    with open_models(p.recipe) as readers:
        job = p.jobs[0]
        tensors, base, _norms = _load(job, readers)
        out = run_job(p, job, tensors, base, seed=3, device=torch.device("cuda"))
    assert out.device.type == "cpu" and out.dtype == job.out_dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_method_gives_cpu_bytes_on_cuda(big_family, name, dtype):
    """Every registered method, on tensors large enough that reductions split: the bytes on
    cuda are the bytes on cpu. Where they are not, the message says how far apart (largest
    difference in units of the cpu tensor's largest magnitude) so the docs can say it; with
    KINMERGE_CUDA_BYTES=FILE each case also appends a JSON row there (benchmarks/gpu_check.sh)."""
    r = recipe(name, dtype, big_family)
    cpu = kinmerge.merge_to_memory(r, device="cpu", seed=7).tensors
    gpu = kinmerge.merge_to_memory(r, device="cuda", seed=7).tensors
    assert list(cpu) == list(gpu)
    differ, worst = [], 0.0
    for n, t in cpu.items():
        g = gpu[n]
        assert g.device.type == "cpu" and g.dtype == t.dtype, n
        if not torch.equal(t.view(torch.uint8), g.view(torch.uint8)):
            differ.append(n)
            scale = t.float().abs().max().clamp_min(1e-30)
            worst = max(worst, float((t.float() - g.float()).abs().max() / scale))
    if os.environ.get("KINMERGE_CUDA_BYTES"):
        with open(os.environ["KINMERGE_CUDA_BYTES"], "a") as f:
            f.write(json.dumps({"method": name, "dtype": dtype, "tensors": len(cpu),
                                "differ": len(differ), "worst_rel": worst}) + "\n")
    assert not differ, (f"{name} {dtype}: {len(differ)} of {len(cpu)} tensors differ on cuda "
                        f"(largest difference {worst:.2e} of the tensor's largest magnitude): "
                        f"{differ[:4]}")
