"""The two measured halves of benchmarks/gpu_check.sh (run that; it times and bounds them).

  merges  linear and TIES at --params (default 0.27B, bench_merge's synthetic bfloat16 Llama
          family) with kinmerge on cpu and on cuda, and with `mergekit-yaml` (--cuda when a
          GPU is there) when it is installed: wall time per run, and whether each output's
          bytes equal kinmerge-on-cpu's (kinmerge cuda must: a mismatch fails the check).
          mergekit's TIES ranks equal magnitudes by an unstable sort whose order depends on
          the device, so it is compared with kinmerge's `topk: mergekit` on the same device
  search  one evolve and one breed on the shipped zoo (small budgets), device cpu and, with a
          GPU, device cuda: wall time, and whether the runs agree (best recipe and scores;
          reported, not required: a GPU's matmuls round differently, and a score on the edge
          of an exact match may flip)

Each prints JSON rows (one per line, "ROW {...}") and, last, "OK" or "FAILED: why".
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
MERGEKIT = [os.environ.get("MERGEKIT_YAML", ""), shutil.which("mergekit-yaml") or "",
            "/tmp/mkvenv/bin/mergekit-yaml"]
KINMERGE_YAML = [sys.executable, "-c",
                 "import sys; from kinmerge.cli.mergekit_compat import main; sys.exit(main())"]


def row(**kw) -> None:
    print("ROW " + json.dumps(kw), flush=True)


def digest(model_dir: Path) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order (the files'
    headers differ between tools; the tensors must not)."""
    from safetensors import safe_open

    h = hashlib.sha256()
    files = sorted(model_dir.glob("*.safetensors"))
    tensors = {}
    for f in files:
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                tensors[k] = (f, k)
    for k in sorted(tensors):
        with safe_open(str(tensors[k][0]), "pt") as st:
            t = st.get_tensor(k)
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.contiguous().view(-1).view(__import__("torch").uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def merges(args: argparse.Namespace, gpu: bool) -> list[str]:
    from bench_merge import build_models, llama_shape, parse_params

    p = build_models(args.work / "models" / args.params, llama_shape(parse_params(args.params)))
    three = (("ft1", 0.4), ("ft2", 0.3), ("ft3", 0.3))
    recipes = {
        "linear": {"merge_method": "linear", "dtype": "bfloat16", "models": [
            {"model": p[m], "parameters": {"weight": w}} for m, w in three]},
        "ties": {"merge_method": "ties", "base_model": p["base"], "dtype": "bfloat16",
                 "models": [{"model": p[m], "parameters": {"weight": w, "density": 0.5}}
                            for m, w in three]}}
    # mergekit ranks equal magnitudes by torch's unstable sort (on the GPU in bfloat16, on
    # the CPU in float32), so its TIES is compared with kinmerge's `topk: mergekit` on the
    # same device; that order depends on the device by construction, so it is not part of
    # the cpu-vs-cuda byte check
    mk_order = {**recipes["ties"], "kinmerge": {"topk": "mergekit"}}
    mk = next((m for m in MERGEKIT if m and Path(m).exists()), None)
    device = "cuda" if gpu else "cpu"
    failures = []
    for name, recipe in recipes.items():
        ref = None
        for dev in ["cpu"] + (["cuda"] if gpu else []):
            d, wall = _kinmerge(recipe, args.work / "out" / f"{name}-{dev}", dev)
            ref = ref or d
            row(check="merge", method=name, tool="kinmerge", device=dev, wall_s=wall,
                same_bytes_as_kinmerge_cpu=d == ref)
            if d != ref:
                failures.append(f"{name}: kinmerge on {dev} gave other bytes than on cpu")
        if mk is None:
            row(check="merge", method=name, tool="mergekit", skipped="mergekit-yaml not found")
            continue
        theirs = recipe
        if name == "ties":
            ref, _ = _kinmerge(mk_order, args.work / "out" / "ties-mk-order", device)
            theirs = {k: v for k, v in mk_order.items() if k != "kinmerge"}
        # side by side as users run them: each tool's command in a fresh process, start-up
        # included, on the same recipe file (kinmerge-yaml takes mergekit's YAML and flags)
        for tool, cmd in (("mergekit-yaml", [mk]), ("kinmerge-yaml", KINMERGE_YAML)):
            got = _cli(cmd, theirs, args.work, f"{name}-{tool}", gpu)
            if "error" in got:
                row(check="merge", method=name, tool=tool, error=got["error"])
                continue
            row(check="merge", method=name, tool=tool, device=device, wall_s=got["wall_s"],
                same_bytes_as_kinmerge=got["digest"] == ref,
                recipe="ties, kinmerge: {topk: mergekit}" if name == "ties" else name)
    return failures


def _kinmerge(recipe: dict, out: Path, device: str) -> tuple[str, float]:
    """(digest, wall seconds) of one kinmerge merge into `out` (removed after)."""
    import torch

    import kinmerge

    t0 = time.perf_counter()
    kinmerge.merge(recipe, out, device=device, overwrite=True)
    if device == "cuda":
        torch.cuda.synchronize()
    wall = round(time.perf_counter() - t0, 2)
    d = digest(out)
    shutil.rmtree(out)
    return d, wall


def _cli(command: list[str], recipe: dict, work: Path, name: str, gpu: bool) -> dict:
    """{digest, wall_s} of a mergekit-style command (`mergekit-yaml CONFIG OUT [--cuda]`) on
    `recipe`, its process start included, or {error}."""
    import yaml

    cfg = work / f"{name}.yml"
    cfg.write_text(yaml.safe_dump(recipe))
    out = work / "out" / name
    cmd = [*command, str(cfg), str(out)] + (["--cuda"] if gpu else [])
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = round(time.perf_counter() - t0, 2)
    if done.returncode != 0:
        return {"error": done.stderr[-500:]}
    d = digest(out)
    shutil.rmtree(out)
    return {"digest": d, "wall_s": wall}


def search(args: argparse.Namespace, gpu: bool) -> list[str]:
    import yaml

    from kinmerge.search.breed import breed
    from kinmerge.search.evolve import evolve
    from kinmerge.zoo.artifact import materialize

    zoo = materialize(args.work / "zoo")

    def at_zoo(text: str) -> dict:
        return yaml.safe_load(text.replace("zoo/", f"{zoo}/"))

    evo = at_zoo((ROOT / "examples" / "evolve-zoo.yml").read_text())
    evo["budget"] = {"trials": args.trials}
    evo["baselines"] = {"weights": [0.75], "densities": [0.5]}
    bre = at_zoo((ROOT / "examples" / "breed-zoo.yml").read_text())
    bre["budget"] = {"evaluations": args.evaluations, "generations": 3}
    runs: dict[str, dict] = {}
    for device in ["cpu"] + (["cuda"] if gpu else []):
        t0 = time.perf_counter()
        s = evolve({**evo, "device": device}, args.work / f"evolve-{device}").summary
        runs[f"evolve-{device}"] = {"best_search": s.best_search,
                                    "best_heldout": s.best_heldout,
                                    "best": (args.work / f"evolve-{device}" / "best.yml"
                                             ).read_text().split("\n", 1)[1]}
        row(check="evolve", device=device, trials=s.trials,
            wall_s=round(time.perf_counter() - t0, 2), best_search=s.best_search,
            best_heldout=s.best_heldout)
        t0 = time.perf_counter()
        b = breed({**bre, "device": device}, args.work / f"breed-{device}", plots=False).summary
        runs[f"breed-{device}"] = {"best": b.best_model, "fitness": b.best_score,
                                   "evaluations": b.evaluations}
        row(check="breed", device=device, evaluations=b.evaluations,
            wall_s=round(time.perf_counter() - t0, 2), best_model=b.best_model,
            best_score=b.best_score)
    if gpu:
        for what in ("evolve", "breed"):
            row(check=f"{what}-agrees", same=runs[f"{what}-cpu"] == runs[f"{what}-cuda"])
    return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part", choices=["merges", "search"])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--params", default="0.27B")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--evaluations", type=int, default=10)
    args = ap.parse_args()
    import torch

    gpu = torch.cuda.is_available()
    args.work.mkdir(parents=True, exist_ok=True)
    failures = (merges if args.part == "merges" else search)(args, gpu)
    print("FAILED: " + "; ".join(failures) if failures else "OK", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
