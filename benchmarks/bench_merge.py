"""Wall time and peak memory of `kinmerge merge`, beside `mergekit-yaml` when it is installed.

Builds (once, cached under --models) a synthetic bfloat16 Llama base and three fine-tunes of
about --params parameters, then merges them with each method in a fresh subprocess and reads
that child's peak RSS from os.wait4. A read+write floor (read every input tensor once, write
one model) shows how much of a merge is I/O.

    .venv/bin/python benchmarks/bench_merge.py                        # 0.84B, all methods
    .venv/bin/python benchmarks/bench_merge.py --params 0.05B --threads 1,2 --skip-mergekit
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DEFAULT_MK = "/tmp/mkvenv/bin/mergekit-yaml"
METHODS = ("linear", "slerp", "task_arithmetic", "ties", "dare_ties")
T_GRADIENT = [{"filter": "self_attn", "value": [0, 0.5, 0.3, 0.7, 1]},
              {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]}, {"value": 0.5}]


def parse_params(text: str) -> float:
    t = text.strip().upper()
    scale = {"B": 1e9, "M": 1e6, "K": 1e3}.get(t[-1], 1.0)
    return float(t[:-1] if t[-1] in "BMK" else t) * scale


def llama_shape(n_params: float) -> dict:
    """A realistic Llama shape of about n_params (TinyLlama-like: GQA 8:1, vocab 32000).

    At 0.84B: hidden 2048, intermediate 5632, 32 heads / 4 kv heads, 16 layers.
    """
    for hidden, inter, vocab in ((2048, 5632, 32000), (1024, 2816, 32000), (512, 1408, 8000),
                                 (256, 688, 4000)):
        per_layer = 2 * hidden * hidden + 2 * hidden * (hidden // 8) + 3 * hidden * inter \
            + 2 * hidden
        layers = round((n_params - 2 * vocab * hidden) / per_layer)
        if layers >= 8:  # a deep enough stack, else try a narrower model
            break
    layers = max(layers, 2)
    return dict(layers=layers, hidden=hidden, intermediate=inter, vocab=vocab,
                heads=hidden // 64, kv_heads=max(1, hidden // 512))


def build_models(d: Path, shape: dict, shard_bytes: int = 2 * 1024**3) -> dict[str, str]:
    import torch

    from kinmerge.zoo.synthetic import synthetic_llama

    paths = {m: d / m for m in ("base", "ft1", "ft2", "ft3")}
    stamp = d / "shape.json"
    want = {**shape, "shard_bytes": shard_bytes}
    if stamp.exists() and json.loads(stamp.read_text()) in (want, shape if shard_bytes ==
                                                             2 * 1024**3 else None):
        return {k: str(v) for k, v in paths.items()}
    shutil.rmtree(d, ignore_errors=True)
    t0 = time.perf_counter()
    kw = dict(dtype=torch.bfloat16, max_shard_bytes=shard_bytes, **shape)
    synthetic_llama(paths["base"], seed=0, **kw)
    for i, delta in ((1, 0.01), (2, 0.02), (3, 0.015)):
        synthetic_llama(paths[f"ft{i}"], seed=i, base=paths["base"], delta=delta, **kw)
    stamp.write_text(json.dumps(want))
    print(f"built 4 models in {d} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return {k: str(v) for k, v in paths.items()}


def recipe(method: str, p: dict[str, str], density: float) -> dict:
    ft = [p["ft1"], p["ft2"], p["ft3"]]
    if method == "slerp":
        return {"merge_method": "slerp", "base_model": p["base"], "dtype": "bfloat16",
                "models": [{"model": p["base"]}, {"model": p["ft1"]}],
                "parameters": {"t": T_GRADIENT}}
    weights = (0.4, 0.3, 0.3)
    params = [{"weight": w} for w in weights]
    if method in ("ties", "dare_ties", "dare_linear"):
        params = [{"weight": w, "density": density} for w in weights]
    out = {"merge_method": method, "dtype": "bfloat16",
           "models": [{"model": m, "parameters": q} for m, q in zip(ft, params)]}
    if method != "linear":
        out["base_model"] = p["base"]
    return out


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read().decode(errors="replace")
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{out[-3000:]}")
    return wall, usage.ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


FLOOR = """
import sys
from pathlib import Path
from kinmerge.io.reader import ModelReader
from kinmerge.io.writer import ShardedWriter
readers = [ModelReader(p) for p in sys.argv[2:]]
first = readers[0]
names = first.names()
Path(sys.argv[1]).mkdir(parents=True)
w = ShardedWriter(Path(sys.argv[1]), [(n, first.dtype(n), first.shape(n)) for n in names],
                  5 * 10**9)
for n in names:
    ts = [r.get(n) for r in readers]
    w.add(n, ts[0])
    del ts
w.close()
"""


def env_for(threads: int | None) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("OMP_NUM_THREADS", None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def load() -> str:
    return "load %.2f %.2f %.2f" % os.getloadavg()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="0.84B", help="model size, e.g. 0.84B, 50M")
    ap.add_argument("--models", default=None,
                    help="where the input models are cached (default runs/bench-models/SIZE)")
    ap.add_argument("--out", default=None, help="scratch output dir (default runs/bench-out)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--threads", default="1", help="torch threads for kinmerge, e.g. 1,2")
    ap.add_argument("--mergekit-threads", type=int, default=None,
                    help="OMP_NUM_THREADS for mergekit (default: torch's own choice)")
    ap.add_argument("--density", type=float, default=0.5, help="density of ties/dare_ties")
    ap.add_argument("--mergekit-bin", default=shutil.which("mergekit-yaml") or DEFAULT_MK)
    ap.add_argument("--skip-mergekit", action="store_true")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)

    shape = llama_shape(parse_params(args.params))
    models_dir = Path(args.models or ROOT / "runs" / "bench-models" / args.params)
    scratch = Path(args.out or ROOT / "runs" / "bench-out")
    scratch.mkdir(parents=True, exist_ok=True)
    paths = build_models(models_dir, shape)
    n_params = _count_params(paths["base"])
    mk = None if args.skip_mergekit else args.mergekit_bin
    if mk and not Path(mk).exists():
        print(f"mergekit-yaml not found at {mk}: kinmerge only")
        mk = None
    threads = [int(t) for t in args.threads.split(",")]
    print(f"{n_params / 1e9:.3f}B params, bf16, {shape}; cpus {os.cpu_count()}; {load()}",
          flush=True)

    out = scratch / "merged"
    shutil.rmtree(out, ignore_errors=True)
    floor = run([sys.executable, "-c", FLOOR, str(out), *paths.values()], env_for(1))
    shutil.rmtree(out, ignore_errors=True)
    print(f"read 4 models + write 1: {floor[0]:.1f} s, {floor[1]:.2f} GB; {load()}", flush=True)

    rows = []
    for method in args.methods.split(","):
        rf = scratch / f"{method}.yml"
        rf.write_text(json.dumps(recipe(method, paths, args.density)))  # JSON is YAML
        row = {"method": method, "kinmerge": {}}
        for t in threads:
            shutil.rmtree(out, ignore_errors=True)
            row["kinmerge"][t] = run([str(VENV_BIN / "kinmerge"), "merge", str(rf), str(out),
                                      "--no-progress", "--no-copy-tokenizer",
                                      "--no-write-model-card"], env_for(t))
            print(f"{method:<16} kinmerge  {t} thr  {row['kinmerge'][t][0]:7.1f} s "
                  f"{row['kinmerge'][t][1]:6.2f} GB   {load()}", flush=True)
        if mk:
            shutil.rmtree(out, ignore_errors=True)
            row["mergekit"] = run([mk, str(rf), str(out), "--no-copy-tokenizer",
                                   "--no-write-model-card", "--quiet"],
                                  env_for(args.mergekit_threads))
            print(f"{method:<16} mergekit         {row['mergekit'][0]:7.1f} s "
                  f"{row['mergekit'][1]:6.2f} GB   {load()}", flush=True)
        shutil.rmtree(out, ignore_errors=True)
        rows.append(row)
    _table(rows, threads, floor)
    if args.json:
        Path(args.json).write_text(json.dumps({"shape": shape, "params": n_params,
                                               "floor": floor, "rows": rows}, indent=1))
    return 0


def _count_params(path: str) -> int:
    from kinmerge.io.reader import ModelReader

    with ModelReader(path) as r:
        return r.num_parameters()


def _table(rows: list[dict], threads: list[int], floor: tuple[float, float]) -> None:
    head = "| method |" + "".join(f" kinmerge {t}thr s | peak RSS |" for t in threads) \
        + " mergekit s | mergekit RSS | ratio (best kinmerge / mergekit) |"
    print("\n" + head)
    print("|" + "---|" * (head.count("|") - 1))
    print("| read+write floor |" + f" {floor[0]:.1f} | {floor[1]:.2f} GB |"
          + " |" * (2 * len(threads) - 2) + " | | |")
    for r in rows:
        k = r["kinmerge"]
        cells = "".join(f" {k[t][0]:.1f} | {k[t][1]:.2f} GB |" for t in threads)
        if "mergekit" in r:
            m = r["mergekit"]
            best = min(v[0] for v in k.values())
            cells += f" {m[0]:.1f} | {m[1]:.2f} GB | {best / m[0]:.2f}x |"
        else:
            cells += " - | - | - |"
        print(f"| {r['method']} |{cells}")


if __name__ == "__main__":
    sys.exit(main())
