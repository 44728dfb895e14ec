"""Wall time and peak memory of `kinmerge merge` beside `mergekit-yaml`, as users run them.

Builds (once, cached under runs/bench-models/SIZE) a synthetic bfloat16 Llama base and three
fine-tunes of each --params size (below 0.5B the inputs are sharded, 200 MB a shard), then,
for each method and each setting, runs both tools in fresh processes, alternating which goes
first, --runs times. No thread variable is exported unless a setting says so:

  default   neither tool's environment touched (what a user gets)
  1, 2      OMP_NUM_THREADS=N for both tools
  busy      default settings, one CPU-bound process running beside both tools (busy2: two)
  gpu       kinmerge --device cuda vs mergekit --cuda (only where torch sees a GPU)

Each row reports the medians of wall time and peak RSS (GNU time's %M, so this script's own
memory never counts) and the median of the per-pair ratios kinmerge / mergekit, with the mean
1-minute load average at the start of the row's runs. --before SRC adds kinmerge from another
source tree (e.g. a `git archive` of main) to every pair, for before/after tables.

    .venv/bin/python benchmarks/bench_merge.py                       # what `make bench` runs
    .venv/bin/python benchmarks/bench_merge.py --params 0.05B --settings default,1 --runs 1
    .venv/bin/python benchmarks/bench_merge.py --params 0.27B,0.84B --methods linear \
        --settings default,busy --write-docs merge-quiet    # replace a docs table

--write-docs NAME writes benchmarks/results/NAME.json (the rows with the command, machine,
date and mergekit version) and rewrites the docs tables rendered from it (tools/results/bench.py:
merge-loaded, merge-quiet, merge-busy in docs/concepts/performance.md).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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



SETTINGS = ("default", "1", "2", "busy", "busy2", "gpu")
TIME = "/usr/bin/time"


@dataclass(frozen=True)
class Tool:
    """One side of a pair: how to run it, with what extra environment."""

    name: str
    argv: tuple[str, ...]  # the command, before RECIPE OUT
    flags: tuple[str, ...]  # after RECIPE OUT
    env: tuple[tuple[str, str], ...] = ()
    gpu_flags: tuple[str, ...] = ()


def tools(args) -> list[Tool]:
    km_flags = ("--no-progress", "--no-copy-tokenizer", "--no-write-model-card")
    out = [Tool("kinmerge", (str(VENV_BIN / "kinmerge"), "merge"), km_flags,
                (("PYTHONPATH", str(ROOT / "src")),), ("--device", "cuda"))]
    if args.before:
        out.append(Tool("before", (str(VENV_BIN / "kinmerge"), "merge"), km_flags,
                        (("PYTHONPATH", str(Path(args.before).resolve())),),
                        ("--device", "cuda")))
    mk = None if args.skip_mergekit else args.mergekit_bin
    if mk and Path(mk).exists():
        out.append(Tool("mergekit", (mk,), ("--no-copy-tokenizer", "--no-write-model-card",
                                            "--quiet"), (), ("--cuda",)))
    elif mk:
        print(f"mergekit-yaml not found at {mk}: kinmerge only", flush=True)
    return out


def env_for(setting: str, tool: Tool) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", **dict(tool.env)}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "KINMERGE_THREADS"):
        env.pop(var, None)  # measure what users get: nothing inherited from `make` or a shell
    if setting.isdigit():
        env["OMP_NUM_THREADS"] = setting
    return env


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB) of one fresh child process."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        timed = [TIME, "-f", "%M", "-o", rss.name, *cmd] if Path(TIME).exists() else cmd
        t0 = time.perf_counter()
        proc = subprocess.run(timed, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            out = proc.stdout.decode(errors="replace")
            raise RuntimeError(f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{out[-3000:]}")
        text = rss.read().strip().splitlines()
    kib = int(text[-1]) if text and text[-1].isdigit() else 0
    return wall, kib / 1024**2


@contextlib.contextmanager
def busy(n: int) -> Iterator[None]:
    """n CPU-bound processes beside the tools while the block runs."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(1.0 if n else 0)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def load() -> float:
    return os.getloadavg()[0]


def measure_row(setting: str, rf: Path, out: Path, kinds: list[Tool], runs: int,
                label: str) -> dict:
    """`runs` rounds of every tool, the order rotating each round; medians and pair ratios."""
    times: dict[str, list] = {t.name: [] for t in kinds}
    loads = []
    with busy({"busy": 1, "busy2": 2}.get(setting, 0)):
        for i in range(runs):
            order = kinds[i % len(kinds):] + kinds[:i % len(kinds)]
            for tool in order:
                shutil.rmtree(out, ignore_errors=True)
                extra = tool.gpu_flags if setting == "gpu" else ()
                loads.append(load())
                wall, rss = run([*tool.argv, str(rf), str(out), *tool.flags, *extra],
                                env_for(setting, tool))
                times[tool.name].append((wall, rss))
                print(f"  {label:<28} {tool.name:<9} run {i + 1}: {wall:7.1f} s {rss:6.2f} GB"
                      f"  load {loads[-1]:.2f}", flush=True)
    shutil.rmtree(out, ignore_errors=True)
    row = {"setting": setting, "load": statistics.mean(loads), "runs": runs}
    for name, v in times.items():
        row[name] = {"wall": statistics.median(w for w, _ in v),
                     "rss": statistics.median(r for _, r in v), "all": v}
    if "mergekit" in times:
        mk = times["mergekit"]
        for name in times:
            if name != "mergekit":
                row[name]["ratio"] = statistics.median(a[0] / b[0] for a, b in
                                                       zip(times[name], mk))
                row[name]["rss_ratio"] = statistics.median(a[1] / b[1] for a, b in
                                                           zip(times[name], mk))
    return row


def has_gpu() -> bool:
    code = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    return subprocess.run([sys.executable, "-c", code]).returncode == 0


def bench_size(size: str, args, kinds: list[Tool], settings: list[str]) -> list[dict]:
    shape = llama_shape(parse_params(size))
    shard = 200 * 10**6 if parse_params(size) < 0.5e9 else 2 * 1024**3
    models_dir = Path(args.models or ROOT / "runs" / "bench-models") / size
    scratch = Path(args.out or ROOT / "runs" / "bench-out")
    scratch.mkdir(parents=True, exist_ok=True)
    paths = build_models(models_dir, shape, shard)
    print(f"\n{size}: {shape}, inputs in {len(list(Path(paths['base']).glob('*.safetensors')))} "
          f"shard(s); cpus {os.cpu_count()}; load {load():.2f}", flush=True)
    out = scratch / "merged"
    shutil.rmtree(out, ignore_errors=True)
    floor = run([sys.executable, "-c", FLOOR, str(out), *paths.values()],
                env_for("1", kinds[0]))
    shutil.rmtree(out, ignore_errors=True)
    rows = [{"size": size, "method": "read 4 + write 1", "setting": "floor", "load": load(),
             "kinmerge": {"wall": floor[0], "rss": floor[1]}}]
    for method in args.methods.split(","):
        rf = scratch / f"{size}-{method}.yml"
        rf.write_text(json.dumps(recipe(method, paths, args.density)))  # JSON is YAML
        for setting in settings:
            label = f"{size} {method} {setting}"
            these = [t for t in kinds if t.name != "before" or setting in args.before_settings]
            row = measure_row(setting, rf, out, these, args.runs, label)
            rows.append({"size": size, "method": method, **row})
    return rows


def table(rows: list[dict], names: list[str]) -> str:
    mk = "mergekit" in names
    ours = [n for n in names if n != "mergekit"]
    head = ["size", "method", "threads", "load avg"]
    for n in ours:
        head += [f"{n} s", f"{n} RSS"] + (["÷ mergekit (time)", "÷ mergekit (RSS)"] if mk else [])
    head += ["mergekit s", "mergekit RSS"] if mk else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["size"], r["method"], r["setting"], f"{r['load']:.2f}"]
        for n in ours:
            v = r.get(n)
            if v is None:
                cells += ["–", "–"] + (["", ""] if mk else [])
                continue
            cells += [f"{v['wall']:.1f}", f"{v['rss']:.2f} GB"]
            if mk:
                cells += ([f"**{v['ratio']:.2f}×**", f"{v['rss_ratio']:.2f}×"] if "ratio" in v
                          else ["", ""])
        if mk:
            m = r.get("mergekit")
            cells += [f"{m['wall']:.1f}", f"{m['rss']:.2f} GB"] if m else ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="0.27B,0.84B", help="sizes, e.g. 0.27B,0.84B or 50M")
    ap.add_argument("--models", default=None, help="model cache (default runs/bench-models)")
    ap.add_argument("--out", default=None, help="scratch output dir (default runs/bench-out)")
    ap.add_argument("--methods", default="linear,ties", help=f"any of {','.join(METHODS)}")
    ap.add_argument("--settings", default="default,1,2,busy,gpu",
                    help=f"rows per method, of {','.join(SETTINGS)} (gpu: only with CUDA)")
    ap.add_argument("--runs", type=int, default=3, help="rounds per row (a fresh process each)")
    ap.add_argument("--density", type=float, default=0.5, help="density of ties/dare_ties")
    ap.add_argument("--mergekit-bin", default=shutil.which("mergekit-yaml") or DEFAULT_MK)
    ap.add_argument("--skip-mergekit", action="store_true")
    ap.add_argument("--before", default=None, metavar="SRC",
                    help="also run kinmerge from this source dir (its `src/`), e.g. main's")
    ap.add_argument("--before-settings", default="default",
                    help="the rows that also run --before (default: the default row only)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--write-docs", default=None, metavar="NAME",
                    help="also write benchmarks/results/NAME.json and rewrite the docs tables "
                         "rendered from it (merge-loaded, merge-quiet, merge-busy)")
    args = ap.parse_args(argv)
    args.before_settings = args.before_settings.split(",")
    settings = [s for s in args.settings.split(",") if s != "gpu" or has_gpu()]
    if "gpu" in args.settings.split(",") and "gpu" not in settings:
        print("gpu row skipped: torch sees no GPU here", flush=True)
    kinds = tools(args)
    rows = [r for size in args.params.split(",") for r in bench_size(size, args, kinds,
                                                                    settings)]
    print("\n" + table(rows, [t.name for t in kinds]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.write_docs:
        write_docs(args.write_docs, rows, args, argv if argv is not None else sys.argv[1:],
                   [t.name for t in kinds])
    return 0


def mergekit_version(tools_run: list[str], mk_bin: str) -> str | None:
    if "mergekit" not in tools_run:
        return None
    code = "from importlib.metadata import version; print(version('mergekit'))"
    py = Path(mk_bin).parent / "python"
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True)
    return r.stdout.strip() or None if r.returncode == 0 else None


def write_docs(name: str, rows: list[dict], args, argv: list[str], tools_run: list[str]) -> None:
    """benchmarks/results/NAME.json and the docs tables rendered from it."""
    sys.path.insert(0, str(ROOT))  # tools/ lives at the repo root
    from tools.results.bench import write_source
    from tools.results.collect import machine

    command = " ".join(a for a in argv if a not in ("--write-docs", name))
    mk = mergekit_version(tools_run, args.mergekit_bin)
    data = {"name": name, "benchmark": "bench_merge",
            "command": f"benchmarks/bench_merge.py {command}".strip(), "machine": machine(),
            "date": time.strftime("%Y-%m-%d"),
            "note": f"dtype bfloat16{f', mergekit {mk}' if mk else ''}; medians of "
                    f"{args.runs} round{'s' * (args.runs != 1)}.",
            "mergekit": mk, "density": args.density, "runs": args.runs, "rows": rows}
    os.chdir(ROOT)
    for path in write_source(data):
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
