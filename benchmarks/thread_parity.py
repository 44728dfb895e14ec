"""Does a merge's output follow the torch thread count? mergekit-yaml beside kinmerge.

Builds (under --work) a float32 and a bfloat16 synthetic Llama (4 layers, 256 x 512 MLP
matrices: large enough that torch splits its reductions across threads) with a base and three
fine-tunes, then:
  threads: float32 gradient-SLERP, model_stock and karcher merges, by mergekit-yaml with one
    and with two threads (`--num-threads N`, OMP_NUM_THREADS=N) and by kinmerge with
    `threads=1` and `threads=2`: which tensors differ between each pair;
  topk: bfloat16 TIES and breadcrumbs by mergekit-yaml three times at one thread and once at
    2 and 4 threads (is its unstable top-k order the same every time?), and by kinmerge with
    the `mergekit` and the `stable` order.
Prints one JSON line per recipe and writes them to WORK/results.json. Run it where mergekit
0.1.5 is installed (e.g. /tmp/mkvenv, see benchmarks/parity_mergekit.py):

    .venv/bin/python benchmarks/thread_parity.py [--mergekit-bin PATH] [--work DIR] [threads|topk]

--write-docs (with both parts) also writes benchmarks/results/thread-parity.json (the results
with the command, machine, date, torch and mergekit versions) and rewrites the blocks of
docs/reference/mergekit.md rendered from it (tools/results/bench.py).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from parity_mergekit import DEFAULT_MK, T_GRADIENT  # noqa: E402

import kinmerge  # noqa: E402
from kinmerge.zoo.synthetic import synthetic_llama  # noqa: E402

SHAPE = dict(layers=4, hidden=256, intermediate=512, vocab=64, heads=4)


def family(root: Path, dt: str) -> dict[str, str]:
    d = root / f"models-{dt}"
    if not (d / "ft3" / "config.json").exists():
        base = synthetic_llama(d / "base", seed=0, dtype=getattr(torch, dt), **SHAPE)
        for i in (1, 2, 3):  # float32: far apart (SLERP's angle matters); bf16: close (ties)
            synthetic_llama(d / f"ft{i}", base=base, seed=i, dtype=getattr(torch, dt),
                            delta=0.5 if dt == "float32" else 0.05, **SHAPE)
    return {m: str(d / m) for m in ("base", "ft1", "ft2", "ft3")}


def load(out: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for f in sorted(out.glob("*.safetensors")):
        tensors.update(load_file(f))
    return tensors


def mergekit(bin_: str, root: Path, recipe: dict, name: str, threads: int, run: int = 0):
    rf = root / f"{name}.yml"
    rf.write_text(yaml.safe_dump(recipe))
    out = root / f"out-{name}-{threads}t-{run}"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([bin_, str(rf), str(out), "--no-copy-tokenizer",
                           "--no-write-model-card", "--quiet", "--random-seed", "0",
                           "--num-threads", str(threads)], capture_output=True, text=True,
                          env=env)
    if proc.returncode:
        raise SystemExit(f"mergekit-yaml failed on {name}:\n{proc.stderr[-2000:]}")
    return load(out)


def diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict:
    differ = [k for k in sorted(a) if not torch.equal(a[k], b[k])]
    return {"tensors": len(a), "differ": len(differ),
            "elements": sum(int((a[k] != b[k]).sum()) for k in differ),
            "max_abs": max((float((a[k].float() - b[k].float()).abs().max()) for k in differ),
                           default=0.0)}


def threads_cases(bin_: str, root: Path) -> dict:
    p = family(root, "float32")
    fts = [{"model": p[m]} for m in ("ft1", "ft2", "ft3")]
    cases = {
        "slerp_gradient": {"merge_method": "slerp", "base_model": p["base"], "dtype": "float32",
                           "models": [{"model": p["base"]}, {"model": p["ft1"]}],
                           "parameters": {"t": T_GRADIENT}},
        "model_stock": {"merge_method": "model_stock", "base_model": p["base"],
                        "dtype": "float32", "models": fts},
        "karcher": {"merge_method": "karcher", "dtype": "float32", "models": fts},
    }
    out = {}
    for name, r in cases.items():
        m1, m2 = mergekit(bin_, root, r, name, 1), mergekit(bin_, root, r, name, 2)
        k1, k2 = (kinmerge.merge_to_memory(r, threads=n).tensors for n in (1, 2))
        out[name] = {"mergekit 1 vs 2 threads": diff(m1, m2),
                     "kinmerge threads=1 vs 2": diff(k1, k2),
                     "kinmerge vs mergekit at 1 thread": diff(k1, m1),
                     "kinmerge vs mergekit at 2 threads": diff(k1, m2)}
        print(name, json.dumps(out[name]), flush=True)
    return out


def topk_cases(bin_: str, root: Path) -> dict:
    p = family(root, "bfloat16")
    params = [("ft1", 1.0, 0.5), ("ft2", 0.7, 0.3), ("ft3", 0.5, 0.8)]
    ties = {"merge_method": "ties", "base_model": p["base"], "dtype": "bfloat16",
            "models": [{"model": p[m], "parameters": {"weight": w, "density": d}}
                       for m, w, d in params]}
    crumbs = {**ties, "merge_method": "breadcrumbs",
              "models": [{"model": p[m], "parameters": {"weight": w, "density": d,
                                                          "gamma": 0.01}}
                         for m, w, d in params]}
    out = {}
    for name, r in (("ties_bf16", ties), ("breadcrumbs_bf16", crumbs)):
        runs = [mergekit(bin_, root, r, name, 1, i) for i in range(3)]
        m2, m4 = mergekit(bin_, root, r, name, 2), mergekit(bin_, root, r, name, 4)
        out[name] = {"mergekit run 1 vs 2 (1 thread)": diff(runs[0], runs[1]),
                     "mergekit run 1 vs 3 (1 thread)": diff(runs[0], runs[2]),
                     "mergekit 1 vs 2 threads": diff(runs[0], m2),
                     "mergekit 1 vs 4 threads": diff(runs[0], m4),
                     "kinmerge mergekit order vs mergekit": diff(
                         kinmerge.merge_to_memory(r, ties_topk="mergekit").tensors, runs[0]),
                     "kinmerge stable order vs mergekit": diff(
                         kinmerge.merge_to_memory(r, ties_topk="stable").tensors, runs[0])}
        print(name, json.dumps(out[name]), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # checked below: this Python's argparse refuses an empty nargs="*" list under `choices`
    ap.add_argument("what", nargs="*", help="threads and/or topk (default: both)")
    ap.add_argument("--mergekit-bin", default=DEFAULT_MK)
    ap.add_argument("--work", default=None, help="working directory (default: a temp dir)")
    ap.add_argument("--write-docs", action="store_true",
                    help="write benchmarks/results/thread-parity.json and the docs from it")
    args = ap.parse_args()
    args.what = args.what or ["threads", "topk"]
    if set(args.what) - {"threads", "topk"}:
        ap.error(f"unknown part(s) {sorted(set(args.what) - {'threads', 'topk'})}: "
                 "threads, topk")
    if args.write_docs and set(args.what) != {"threads", "topk"}:
        ap.error("--write-docs needs both parts (threads and topk)")
    if not Path(args.mergekit_bin).exists():
        print(f"{args.mergekit_bin} not found: install mergekit 0.1.5 in a scratch venv")
        return 1
    root = Path(args.work or tempfile.mkdtemp(prefix="kinmerge-thread-parity-"))
    results = {}
    if "threads" in args.what:
        results.update(threads_cases(args.mergekit_bin, root))
    if "topk" in args.what:
        results.update(topk_cases(args.mergekit_bin, root))
    (root / "results.json").write_text(json.dumps(results, indent=1))
    if args.write_docs:
        write_docs(args.mergekit_bin, results)
    return 0


def write_docs(bin_: str, results: dict) -> None:
    """benchmarks/results/thread-parity.json and the mergekit.md blocks rendered from it."""
    import time

    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo))  # tools/ lives at the repo root
    from tools.results.bench import write_source
    from tools.results.collect import machine

    code = "from importlib.metadata import version; print(version('mergekit'))"
    mk = subprocess.run([str(Path(bin_).parent / "python"), "-c", code], capture_output=True,
                        text=True).stdout.strip() or "unknown"
    data = {"name": "thread-parity", "benchmark": "thread_parity",
            "command": "benchmarks/thread_parity.py", "machine": machine(),
            "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__.split("+")[0],
            "mergekit": mk, "shape": SHAPE, "results": results}
    os.chdir(repo)
    for path in write_source(data):
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
