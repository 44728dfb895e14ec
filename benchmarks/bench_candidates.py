"""What one evolution candidate and one breeding child cost at real sizes, and what the worker
cache saves.

For each --sizes entry, builds (once, cached under --root/SIZE) a synthetic bfloat16 Llama
base and fine-tunes with bench_merge's builder, then, each in a fresh worker process (so
its peak RSS is its own):

  evolve     --candidates candidates as evolution scores them: merge_to_memory of a
             --method recipe (default dare_ties, evolve's template) over the base and two
             fine-tunes
             with fresh weights and densities, the module built, a fixed scorer run;
             without the worker cache, then with it (worker_cache = the sources' size)
  breed      --children children as breeding makes them: merged into a folder on disk,
             read back, built and scored

Each worker runs one untimed warm-up first (imports, the first module; with the cache, its
fill: a worker's steady state), and one torch thread unless OMP_NUM_THREADS says otherwise;
like a search worker's jobs, it releases each candidate and trims malloc's heap before the
next one (kinmerge.search.memory.trim_heap).
The scorer is cheap and fixed: the perplexity of the model on a fixed text (the bytes of
TEXT as token ids, 64 tokens), so `score_s` is the same work at every size but for the
model's width.

Reported per size (medians over the timed candidates):
  source_read_s             one read of every source tensor, page cache warm (median of 3)
  outside_scoring_s         merge (reading included) + module build, no cache
  outside_scoring_cached_s  the same with the worker cache
  score_s                   the scorer
  peak_rss_mb               the cached worker's peak RSS (it holds the sources)
  sources_mb, model_mb      the sources' and one merged model's tensor bytes

    .venv/bin/python benchmarks/bench_candidates.py --sizes 0.1B,0.27B,0.84B --json
    .venv/bin/python benchmarks/bench_candidates.py --sizes 0.05B --candidates 2 --children 1

With --device cuda the candidates are merged, cached and scored on the GPU (children stay on
the CPU) and the detail adds the cached worker's peak GPU memory.

The last line printed with --json is one JSON object {"sizes": [{...}, ...]} with exactly
the keys above; the lines before it are a readable table and the per-candidate detail.
--write-docs also writes benchmarks/results/candidates.json (those rows plus the uncached
worker's peak RSS and the breeding child's medians, with the command, machine and date) and
rewrites the table of docs/guides/evolve.md rendered from it (tools/results/bench.py).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TEXT = ("Merging fine-tuned checkpoints is cheap next to training them, but each candidate "
        "of an evolutionary search still pays for its merge before it is scored. ")
TOKENS = 64
KEYS = ("size", "params", "source_read_s", "outside_scoring_s", "outside_scoring_cached_s",
        "score_s", "peak_rss_mb", "sources_mb", "model_mb")


def candidate_recipe(p: dict[str, str], i: int, method: str = "dare_ties") -> dict:
    """Candidate i (-1: the warm-up): `method` over the base and two fine-tunes, its own
    weights (and densities, for the methods that take them), seed i + 1 (a recipe's seed is
    >= 0)."""
    import random

    rng = random.Random(i)
    params = [{"weight": round(rng.uniform(0.2, 0.8), 3),
               "density": round(rng.uniform(0.3, 0.9), 3)} for _ in range(2)]
    if method not in ("ties", "dare_ties", "dare_linear", "breadcrumbs", "della"):
        params = [{"weight": q["weight"]} for q in params]
    return {"merge_method": method, "base_model": p["base"], "dtype": "bfloat16", "seed": i + 1,
            "models": [{"model": p[m], "parameters": q} for m, q in zip(("ft1", "ft2"), params)]}


def perplexity(model, vocab: int) -> float:
    import torch

    device = next(model.parameters()).device
    ids = torch.tensor([[b % vocab for b in TEXT.encode()][:TOKENS]], device=device)
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss
    return float(torch.exp(loss))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch
        torch.cuda.synchronize()


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- worker side ------------------------------------------------------------------------------

def work_evolve(p: dict[str, str], n: int, cache_bytes: int, method: str,
                device: str = "cpu") -> dict:
    import kinmerge
    from kinmerge.evaluate.candidate import Candidate
    from kinmerge.io.cache import TensorCache
    from kinmerge.search.memory import trim_heap

    cache = TensorCache(cache_bytes, device) if cache_bytes else None
    rows = []
    for i in range(-1, n):  # -1: a warm-up (imports, first module; with the cache, its fill)
        t0 = time.perf_counter()
        merged = kinmerge.merge_to_memory(candidate_recipe(p, i, method), cache=cache,
                                          device=device)
        sync(device)
        t1 = time.perf_counter()
        cand = Candidate.from_merge(merged, device=device)
        model = cand.model
        sync(device)
        t2 = time.perf_counter()
        ppl = perplexity(model, merged.config["vocab_size"])
        t3 = time.perf_counter()
        row = {"merge_s": t1 - t0, "build_s": t2 - t1, "score_s": t3 - t2, "ppl": ppl,
               "rss_mb": peak_mb()}
        if i >= 0:
            rows.append(row)
        else:
            warm = row
        cand.release()
        del merged, cand, model
        trim_heap()  # as a search worker does after each job
    gpu = {}
    if device.startswith("cuda"):
        import torch
        gpu = {"peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20)}
    return {"rows": rows, "warm_up": warm, "peak_rss_mb": peak_mb(), **gpu,
            "cache": repr(cache) if cache is not None else None}


def work_breed(p: dict[str, str], n: int, out: str) -> dict:
    import kinmerge
    from kinmerge.evaluate.candidate import Candidate
    from kinmerge.search.memory import trim_heap

    rows = []
    for i in range(-1, n):  # -1: a warm-up, as for evolve
        child = Path(out) / f"child{i}"
        r = {"merge_method": "slerp", "base_model": p["ft1"], "dtype": "bfloat16",
             "seed": i + 1,  # the warm-up is i = -1; a recipe's seed is >= 0
             "models": [{"model": p["ft1"]}, {"model": p["ft2"]}],
             "parameters": {"t": 0.3 + 0.2 * i}}
        t0 = time.perf_counter()
        kinmerge.merge(r, child, write_model_card=False)
        t1 = time.perf_counter()
        cand = Candidate.from_dir(child)
        model = cand.model
        t2 = time.perf_counter()
        ppl = perplexity(model, cand.config["vocab_size"])
        t3 = time.perf_counter()
        if i >= 0:
            rows.append({"merge_s": t1 - t0, "build_s": t2 - t1, "score_s": t3 - t2,
                         "ppl": ppl, "rss_mb": peak_mb()})
        cand.release()
        del cand, model
        trim_heap()  # as a search worker does after each job
    return {"rows": rows, "peak_rss_mb": peak_mb()}


def source_read_s(p: dict[str, str]) -> float:
    from kinmerge.io.reader import ModelReader

    times = []
    for _ in range(4):  # the first read warms the page cache; the median of the next 3
        t0 = time.perf_counter()
        for m in ("base", "ft1", "ft2"):
            with ModelReader(p[m]) as r:
                for name in r.names():
                    r.get(name)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def worker_main(args: argparse.Namespace) -> None:
    p = json.loads(args.worker_models)
    if args.worker == "evolve":
        out = work_evolve(p, args.candidates, args.cache_bytes, args.method, args.device)
    elif args.worker == "breed":
        with tempfile.TemporaryDirectory(dir=args.root) as d:
            out = work_breed(p, args.children, d)
    else:
        out = {"source_read_s": source_read_s(p)}
    print("RESULT " + json.dumps(out), flush=True)


# --- driver side ------------------------------------------------------------------------------

def run_worker(kind: str, p: dict[str, str], args: argparse.Namespace,
               cache_bytes: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--worker-models", json.dumps(p),
           "--candidates", str(args.candidates), "--children", str(args.children),
           "--cache-bytes", str(cache_bytes), "--root", str(args.root), "--method", args.method,
           "--device", args.device]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    line = next(x for x in reversed(done.stdout.splitlines()) if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def tensor_mb(path: str) -> float:
    from kinmerge.io.reader import ModelReader

    with ModelReader(path) as r:
        import math
        return sum(math.prod(r.shape(n)) * r.dtype(n).itemsize for n in r.names()) / 2**20


def measure(size: str, args: argparse.Namespace) -> dict:
    from bench_merge import build_models, llama_shape, parse_params

    shape = llama_shape(parse_params(size))
    p = build_models(args.root / size, shape, shard_bytes=2 * 1024**3)
    with_params = None
    from kinmerge.io.reader import ModelReader
    with ModelReader(p["base"]) as r:
        with_params = r.num_parameters()
    sources_mb = sum(tensor_mb(p[m]) for m in ("base", "ft1", "ft2"))
    model_mb = tensor_mb(p["base"])
    read = run_worker("read", p, args)["source_read_s"]
    plain = run_worker("evolve", p, args)
    cached = run_worker("evolve", p, args, cache_bytes=int(sources_mb * 2**20) + 1)
    breed = run_worker("breed", p, args) if args.children else {"rows": []}

    def med(rows, *keys):
        return round(statistics.median(sum(r[k] for k in keys) for r in rows), 3)

    assert [r["ppl"] for r in plain["rows"]] == [r["ppl"] for r in cached["rows"]], \
        "the cache changed a candidate's score"
    row = {"size": size, "params": with_params, "source_read_s": round(read, 3),
           "outside_scoring_s": med(plain["rows"], "merge_s", "build_s"),
           "outside_scoring_cached_s": med(cached["rows"], "merge_s", "build_s"),
           "score_s": med(plain["rows"] + cached["rows"], "score_s"),
           "peak_rss_mb": round(cached["peak_rss_mb"]), "sources_mb": round(sources_mb),
           "model_mb": round(model_mb)}
    detail = {"size": size, "shape": shape, "device": args.device, "method": args.method,
              "peak_gpu_mb": cached.get("peak_gpu_mb"), "evolve_uncached": plain,
              "evolve_cached": cached,
              "uncached_peak_rss_mb": round(plain["peak_rss_mb"]), "breed": breed,
              "breed_merge_s": med(breed["rows"], "merge_s") if breed["rows"] else None,
              "breed_load_build_s": med(breed["rows"], "build_s") if breed["rows"] else None,
              "breed_score_s": med(breed["rows"], "score_s") if breed["rows"] else None,
              "breed_peak_rss_mb": round(breed.get("peak_rss_mb", 0))}
    return row, detail


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="0.1B,0.27B,0.84B")
    ap.add_argument("--candidates", type=int, default=3)
    ap.add_argument("--children", type=int, default=2)
    ap.add_argument("--device", default="cpu",
                    help="where candidates are merged, cached and scored (cpu, cuda)")
    ap.add_argument("--method", default="dare_ties",
                    help="the candidates' merge method (default: evolve's template, dare_ties)")
    ap.add_argument("--root", type=Path, default=Path("runs/bench-candidates"))
    ap.add_argument("--json", action="store_true", help="print the JSON object last")
    ap.add_argument("--write-docs", action="store_true",
                    help="write benchmarks/results/candidates.json and the docs table from it")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-models", help=argparse.SUPPRESS)
    ap.add_argument("--cache-bytes", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker_main(args)
    if args.candidates < 1:
        ap.error("--candidates must be at least 1")
    args.root = args.root.resolve()
    args.root.mkdir(parents=True, exist_ok=True)
    rows, details = [], []
    print(f"{'size':>6} {'params':>12} {'read':>7} {'outside':>8} {'cached':>7} {'score':>7} "
          f"{'peakMB':>7} {'srcMB':>7} {'modelMB':>7} | breed: merge  load  score  peakMB")
    for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        row, detail = measure(size, args)
        rows.append(row)
        print(f"{row['size']:>6} {row['params']:>12} {row['source_read_s']:>7} "
              f"{row['outside_scoring_s']:>8} {row['outside_scoring_cached_s']:>7} "
              f"{row['score_s']:>7} {row['peak_rss_mb']:>7} {row['sources_mb']:>7} "
              f"{row['model_mb']:>7} | {detail['breed_merge_s']} {detail['breed_load_build_s']}"
              f" {detail['breed_score_s']} {detail['breed_peak_rss_mb']}", flush=True)
        print("DETAIL " + json.dumps(detail), flush=True)
        details.append(detail)
    if args.write_docs:
        write_docs(args, rows, details)
    if args.json:
        print(json.dumps({"sizes": [{k: r[k] for k in KEYS} for r in rows]}))


DOC_DETAIL = ("uncached_peak_rss_mb", "breed_merge_s", "breed_load_build_s", "breed_score_s")


def write_docs(args: argparse.Namespace, rows: list[dict], details: list[dict]) -> None:
    """benchmarks/results/candidates.json and the docs table rendered from it."""
    root = HERE.parent
    sys.path.insert(0, str(root))  # tools/ lives at the repo root
    from tools.results.bench import write_source
    from tools.results.collect import machine

    argv = " ".join(a for a in sys.argv[1:] if a != "--write-docs")
    threads = os.environ.get("OMP_NUM_THREADS", "1")
    data = {"name": "candidates", "benchmark": "bench_candidates",
            "command": f"benchmarks/bench_candidates.py {argv}".strip(),
            "machine": f"{machine()}, load average {os.getloadavg()[0]:.1f} at the end",
            "date": time.strftime("%Y-%m-%d"),
            "note": f"Device {args.device}, {threads} torch thread(s) per worker; medians over "
                    f"the timed candidates ({args.candidates}) and children ({args.children}).",
            "sizes": [{**{k: r[k] for k in KEYS}, **{k: d[k] for k in DOC_DETAIL}}
                      for r, d in zip(rows, details)]}
    os.chdir(root)
    for path in write_source(data):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
