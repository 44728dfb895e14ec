"""Time and peak memory of model kinship on synthetic bf16 Llama models of a given size.

    python benchmarks/bench_kinship.py --params 322M            # builds base + 5 fine-tunes
    python benchmarks/bench_kinship.py --params 20M --no-compat
    python benchmarks/bench_kinship.py --dir /data/km322        # reuse models built before
    python benchmarks/bench_kinship.py --params 322M --repeat 3 --write-docs

--write-docs writes benchmarks/results/kinship-SIZE.json (every run's time and peak RSS, the
compat drift, the machine and the date) and rewrites the docs blocks rendered from it
(tools/results/bench.py: the table and the drift sentence of docs/concepts/kinship-metrics.md
and docs/guides/kinship.md read kinship-322M). --repeat N measures each row N times.

Each measurement runs in a fresh subprocess and reports its wall time and peak RSS (VmHWM),
so nothing one measurement allocated counts against another:
  - start-up:      import torch + kinmerge only (the floor under every other row)
  - pair:          kinship(a, b, base) -- exact, float64, streamed
  - matrix N=5:    kinship_matrix of 5 fine-tunes, one pass over the 6 models
  - pairwise x10:  the same 10 pairs as 10 kinship() calls (what the matrix saves)
  - compat pair:   --compat modelkinship (float32 whole vectors, ModelKinship's arithmetic)
                   on a related pair, with its drift from the exact values
The models sit in the page cache after they are built, so times are compute plus cached reads.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, os, sys, time
import torch
from kinmerge.kinship import kinship, kinship_matrix
job = json.loads(sys.argv[1])
t0 = time.perf_counter()
out = {}
if job["what"] == "pair":
    out = dict(kinship(*job["models"], base=job["base"], compat=job.get("compat")))
elif job["what"] == "matrix":
    m = kinship_matrix(job["models"], base=job["base"], metrics="cs,pcc,ed")
    out = {"mean_pcc": m.mean_pairwise("pcc")}
elif job["what"] == "pairwise":
    ms = job["models"]
    for i in range(len(ms)):
        for j in range(i + 1, len(ms)):
            kinship(ms[i], ms[j], base=job["base"])
out["seconds"] = time.perf_counter() - t0
out["peak_rss_mb"] = peak_rss_mb()
print(json.dumps(out))
"""
# Peak RSS of this process. Linux carries ru_maxrss across fork+exec, so a child started by
# a big parent (this script, after building the models) would report the parent's peak;
# VmHWM belongs to the new address space and does not.
PEAK = r"""
import resource
def peak_rss_mb():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""


def parse_size(s: str) -> int:
    mult = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9}
    s = s.strip().upper()
    return int(float(s[:-1]) * mult[s[-1]]) if s[-1] in mult else int(s)


def shape_for(params: int) -> dict:
    """A Llama shape of about `params` parameters (untied embeddings)."""
    h, inter, vocab = (1024, 2816, 32000) if params >= 100e6 else (256, 704, 8000)
    per_layer = 4 * h * h + 3 * h * inter + 2 * h
    layers = max(1, round((params - 2 * vocab * h - h) / per_layer))
    return dict(layers=layers, hidden=h, intermediate=inter, vocab=vocab, heads=h // 64)


def build(root: Path, params: int, n_models: int) -> tuple[str, list[str]]:
    import torch

    from kinmerge.zoo.synthetic import synthetic_llama

    torch.set_num_threads(1)
    kw = dict(shape_for(params), dtype=torch.bfloat16)
    base = root / "base"
    if not (base / "config.json").exists():
        t = time.perf_counter()
        synthetic_llama(base, seed=0, **kw)
        print(f"built base in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    fts = []
    for i in range(1, n_models + 1):
        ft = root / f"ft{i}"
        if not (ft / "config.json").exists():
            # ft3 descends from ft1, ft4 from ft2: some pairs are related, some are not
            parent = root / f"ft{i - 2}" if i > 2 else base
            synthetic_llama(ft, base=parent, seed=i, delta=0.01, **kw)
            print(f"built {ft.name}", file=sys.stderr)
        fts.append(str(ft))
    return str(base), fts


def measure(job: dict, threads: int | None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "KINMERGE_THREADS")}
    if threads:  # else kinmerge's own policy, as a user runs it
        env["KINMERGE_THREADS"] = str(threads)
    code = PEAK + (CHILD if job["what"] != "startup" else (
        "import json, torch, kinmerge.kinship\n"
        "print(json.dumps({'seconds': 0, 'peak_rss_mb': peak_rss_mb()}))"))
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code, json.dumps(job)], env=env,
                       capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"{job['what']} failed:\n{p.stderr}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["wall_with_startup"] = time.perf_counter() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="322M", help="model size, e.g. 20M, 322M, 1B")
    ap.add_argument("--dir", default=None, help="where the models are (built if missing)")
    # default: kinmerge's thread policy (one thread for kinship: the work is memory-bound,
    # and on a shared 2-core machine a second OpenMP thread mostly spins; measured 0.4 s vs
    # 3.6-9.8 s for a 20M pair under load)
    ap.add_argument("--threads", type=int, default=None, help="KINMERGE_THREADS for the runs")
    ap.add_argument("--no-compat", action="store_true", help="skip the ModelKinship-compat row")
    ap.add_argument("--no-matrix", action="store_true", help="skip the N=5 matrix rows")
    ap.add_argument("--repeat", type=int, default=1, help="measure each row this many times")
    ap.add_argument("--write-docs", action="store_true",
                    help="write benchmarks/results/kinship-SIZE.json and the docs from it")
    args = ap.parse_args()
    params = parse_size(args.params)
    runs: dict[str, list[dict]] = {}

    def timed(what: str, job: dict) -> dict:
        """Measure `job` --repeat times; the last run (printed), every run kept."""
        for _ in range(args.repeat):
            out = measure(job, args.threads)
            runs.setdefault(what, []).append(out)
        return out

    tmp = None if args.dir else tempfile.TemporaryDirectory(prefix="bench_kinship_")
    root = Path(args.dir or tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    base, fts = build(root, params, 2 if args.no_matrix else 5)
    rows = [("start-up (import only)", timed("startup", {"what": "startup"}))]
    pair = timed("pair", {"what": "pair", "models": fts[:2], "base": base})
    rows.append(("pair, exact", pair))
    if not args.no_matrix:
        rows.append(("matrix N=5 (one pass)",
                     timed("matrix", {"what": "matrix", "models": fts, "base": base})))
        rows.append(("pairwise x10 (N=5)",
                     timed("pairwise", {"what": "pairwise", "models": fts, "base": base})))
    if not args.no_compat:
        # a related pair (ft3 descends from ft1), so the drift is relative to a sizeable value
        related = [fts[0], fts[2]] if len(fts) > 2 else fts[:2]
        truth = measure({"what": "pair", "models": related, "base": base}, args.threads)
        compat = timed("compat", {"what": "pair", "models": related, "base": base,
                                  "compat": "modelkinship"})
        rows.append(("pair, --compat modelkinship", compat))
    from kinmerge.io.reader import ModelReader

    n = ModelReader(base).num_parameters()
    print(f"\nmodel kinship, synthetic bf16 Llama, {n / 1e6:.1f}M parameters per model, "
          f"{args.threads or 'default'} torch thread(s), models in page cache")
    print(f"{'measurement':<30}{'time (s)':>10}{'peak RSS (MB)':>15}")
    for name, r in rows:
        print(f"{name:<30}{r['seconds']:>10.2f}{r['peak_rss_mb']:>15.0f}")
    print("\nexact pair:  " + ", ".join(f"{m} = {pair[m]:.10g}" for m in ("cs", "pcc", "ed")))
    if not args.no_compat:
        drift = {m: abs(compat[m] / (abs(truth[m]) if m == "cs" else truth[m]) - 1)
                 for m in ("cs", "pcc", "ed")}
        print(f"related pair {Path(related[0]).name}/{Path(related[1]).name}, exact:  "
              + ", ".join(f"{m} = {truth[m]:.10g}" for m in drift))
        print(f"related pair {Path(related[0]).name}/{Path(related[1]).name}, compat: "
              + ", ".join(f"{m} = {compat[m]:.10g}" for m in drift))
        print("float32 drift of compat vs exact: "
              + ", ".join(f"{m} {v:.2e}" for m, v in drift.items()))
    if args.write_docs:
        write_docs(args, n, runs, None if args.no_compat else {
            "pair": [Path(p).name for p in related],
            "exact": {m: truth[m] for m in ("cs", "pcc", "ed")}, "drift": drift})
    if tmp:
        tmp.cleanup()


def write_docs(args, n_params: int, runs: dict[str, list[dict]], compat: dict | None) -> None:
    """benchmarks/results/kinship-SIZE.json and the docs blocks rendered from it."""
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))  # tools/ lives at the repo root
    from tools.results.bench import write_source
    from tools.results.collect import machine

    argv = " ".join(a for a in sys.argv[1:] if a != "--write-docs")
    threads = args.threads or "kinmerge's default (one)"
    data = {"name": f"kinship-{args.params}", "benchmark": "bench_kinship",
            "command": f"benchmarks/bench_kinship.py {argv}".strip(),
            "machine": f"{machine()}, load average {os.getloadavg()[0]:.1f} at the end, "
                       f"torch threads: {threads}, models in the page cache",
            "date": time.strftime("%Y-%m-%d"), "params_per_model": n_params, "dtype": "bf16",
            "rows": [{"what": what, "seconds": [] if what == "startup" else
                      [round(r["seconds"], 2) for r in rs],
                      "peak_rss_mb": [round(r["peak_rss_mb"]) for r in rs]}
                     for what, rs in runs.items()]}
    if compat:
        data["compat"] = compat
    os.chdir(root)
    for path in write_source(data):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
