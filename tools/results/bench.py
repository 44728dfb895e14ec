"""The docs' benchmark tables, rendered from the JSON the benchmarks write.

Each block of the docs sits between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` and is
rendered from `benchmarks/results/SOURCE.json` alone (NAME -> SOURCE and renderer in BLOCKS).
A benchmark run with `--write-docs` writes its JSON there (the machine, the date and the load
inside) and rewrites the blocks that read it; `python -m tools.results bench` rewrites every
block from the committed JSON. tests/test_bench_docs.py checks each block is its renderer's
output. JSON transcribed from a run made before the benchmark wrote JSON says so in `source`.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path

from tools.results.render import block_text, replace_block

RESULTS_DIR = Path("benchmarks/results")
TAG = "bench"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def caption(d: dict) -> str:
    """Where the numbers come from: the JSON, the command, the machine, the date."""
    src = f" {d['source']}." if d.get("source") else ""
    note = f" {d['note']}" if d.get("note") else ""
    return (f"_From `benchmarks/results/{d['name']}.json`: `{d['command']}` on {d['machine']}, "
            f"{d['date']}.{src}{note}_")


def _load(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def _ratio(v: dict | None, key: str) -> str:
    return f"{v[key]:.2f}×" if v and key in v else ""


SETTING = {"default": "default", "busy": "busy (1 CPU-bound process beside)",
           "busy2": "busy2 (2 CPU-bound processes beside)",
           "1": "`OMP_NUM_THREADS=1` for both", "2": "`OMP_NUM_THREADS=2` for both",
           "floor": "1", "gpu": "`--device cuda` / `--cuda`"}


DENSITY = ("ties", "dare_ties", "dare_linear")


def merge_table(d: dict) -> str:
    """bench_merge's rows: each tool's median wall time and peak RSS, kinmerge ÷ mergekit."""
    rows = d["rows"]
    tools = [t for t in ("kinmerge", "before", "mergekit") if any(t in r for r in rows)]
    mk = "mergekit" in tools
    has_rss = any("rss" in r[t] for r in rows for t in tools if t in r)
    head = ["size", "method", "threads", "load avg", *tools,
            *(["kinmerge ÷ mergekit (time)"] if mk else []),
            *([f"peak RSS {' / '.join(tools)}"] if has_rss else []),
            *(["÷ mergekit (RSS)"] if mk else [])]
    lines = [_row(head), _row(["---"] * len(head))]
    for r in rows:
        km = r["kinmerge"]
        method = r["method"] + (" (floor)" if r["setting"] == "floor" else
                                f" (density {d['density']})" if r["method"] in DENSITY and
                                d.get("density") is not None else "")
        rounds = f" ({r['runs']} round{'s' * (r['runs'] != 1)})" if r.get("runs") not in (
            None, d.get("runs")) else ""
        times = [f"{r[t]['wall']:.1f} s" if t in r else "" for t in tools]
        rss = " / ".join(f"{r[t]['rss']:.2f}" if "rss" in r.get(t, {}) else "–" for t in tools)
        ratio = _ratio(km, "ratio") + (f" (before: {_ratio(r['before'], 'ratio')})"
                                       if _ratio(r.get("before"), "ratio") else "")
        setting = SETTING.get(r["setting"], r["setting"])
        lines.append(_row([r["size"], method + rounds,
                           setting if mk else setting.removesuffix(" for both"),
                           _load(r.get("load")), *times, *([ratio] if mk else []),
                           *([f"{rss} GB"] if has_rss else []),
                           *([_ratio(km, "rss_ratio")] if mk else [])]))
    return "\n".join(lines + ["", caption(d)])


def busy_table(d: dict) -> str:
    """kinmerge alone beside 0, 1, 2 CPU-bound processes: its time and the slowdown."""
    head = ["size", "method", "beside", "load avg", "kinmerge", "× the default row"]
    lines = [_row(head), _row(["---"] * len(head))]
    alone = {(r["size"], r["method"]): r["kinmerge"]["wall"] for r in d["rows"]
             if r["setting"] == "default"}
    beside = {"default": "nothing", "busy": "1 busy process", "busy2": "2 busy processes"}
    for r in d["rows"]:
        if (r["size"], r["method"]) not in alone:  # e.g. the read+write floor
            continue
        wall = r["kinmerge"]["wall"]
        lines.append(_row([r["size"], r["method"], beside.get(r["setting"], r["setting"]),
                           _load(r.get("load")), f"{wall:.1f} s",
                           f"{wall / alone[r['size'], r['method']]:.2f}×"]))
    return "\n".join(lines + ["", caption(d)])


def _secs(v: list[float]) -> str:
    if not v:
        return "—"
    lo, hi = min(v), max(v)
    return f"{lo:.1f} s" if len(v) == 1 or f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f}–{hi:.1f} s"


def _mb(v: list[float]) -> str:
    top = max(v)
    return f"{top / 1024:.1f} GB" if top >= 1024 else f"{top:.0f} MB"


KINSHIP_ROWS = {"startup": "start-up: `import torch, kinmerge.kinship` only",
                "pair": "`kinship A B --base BASE` (exact)",
                "matrix": "`kinship-matrix` of 5 models (one pass over 6 models)",
                "pairwise": "the same 10 pairs as 10 `kinship` calls",
                "compat": "`kinship --compat modelkinship` (float32 whole vectors)"}


def kinship_table(d: dict) -> str:
    """bench_kinship's rows: time (the range over runs) and peak RSS (the largest)."""
    head = [f"{d['params_per_model'] / 1e6:.1f}M parameters per model, {d['dtype']}", "time",
            "peak RSS"]
    lines = [_row(head), _row(["---"] * 3)]
    for r in d["rows"]:
        lines.append(_row([KINSHIP_ROWS[r["what"]], _secs(r["seconds"]),
                           _mb(r["peak_rss_mb"])]))
    return "\n".join(lines + ["", caption(d)])


def kinship_drift(d: dict) -> str:
    """The compat row's float32 drift from the exact values, on the related pair."""
    c = d["compat"]
    drift = c["drift"]
    return (f"On a related pair (pcc ≈ {c['exact']['pcc']:.2f}) of "
            f"{d['params_per_model'] / 1e6:.0f}M-parameter models ModelKinship's float32 "
            f"arithmetic was off by {100 * drift['cs']:.1f} % on `cs`, "
            f"{100 * drift['pcc']:.1f} % on `pcc` and {100 * drift['ed']:.1f} % on `ed` "
            f"(`benchmarks/results/{d['name']}.json`, {d['date']}).")


def startup_table(d: dict) -> str:
    """bench_startup's rows: median and spread of fresh processes, and torch loaded or not."""
    head = ["command", "median", "min – max", "over `python -c pass`", "imports torch"]
    lines = [_row(head), _row(["---"] * len(head))]
    for r in d["rows"]:
        lines.append(_row([r["command"], f"{r['median_s']:.2f} s",
                           f"{r['min_s']:.2f} – {r['max_s']:.2f} s", f"{r['over_pass_s']:+.2f} s",
                           {True: "yes", False: "no"}.get(r["torch"], "—")]))
    load = d["load"]
    return "\n".join(lines + ["", caption({**d, "note": (
        f"{d['runs']} fresh processes a row, interleaved; load average {load[0]:.1f} before, "
        f"{load[1]:.1f} after. {d.get('note', '')}".rstrip())})])


CANDIDATE_HEAD = ["size", "params", "one read of the sources (s)", "outside scoring, no cache (s)",
                  "with the worker cache (s)", "scoring (s)", "peak RSS, cached worker (MB)",
                  "peak RSS, no cache (MB)", "sources (MB)", "one model (MB)",
                  "breeding child: merge to disk / load + build / score (s)"]


def candidates_table(d: dict) -> str:
    """bench_candidates' rows (its --json keys, plus the uncached worker's peak RSS and the
    breeding child's medians)."""
    lines = [_row(CANDIDATE_HEAD), _row(["---"] * len(CANDIDATE_HEAD))]
    for r in d["sizes"]:
        child = " / ".join("–" if r[k] is None else f"{r[k]:.1f}"
                           for k in ("breed_merge_s", "breed_load_build_s", "breed_score_s"))
        lines.append(_row([
            r["size"], f"{r['params'] / 1e9:.3f}B", f"{r['source_read_s']:.2f}",
            f"{r['outside_scoring_s']:.1f}", f"{r['outside_scoring_cached_s']:.1f}",
            f"{r['score_s']:.1f}", f"{r['peak_rss_mb']:.0f}", f"{r['uncached_peak_rss_mb']:.0f}",
            f"{r['sources_mb']:.0f}", f"{r['model_mb']:.0f}", child]))
    first, last = d["sizes"][0], d["sizes"][-1]
    read = last["source_read_s"]
    growth = (f"; from {first['size']} to {last['size']} scoring grew from "
              f"{first['score_s']:.1f} to {last['score_s']:.1f} s and a breeding child's merge "
              f"to disk from {first['breed_merge_s']:.1f} to {last['breed_merge_s']:.1f} s"
              if first is not last and first["breed_merge_s"] and last["breed_merge_s"] else "")
    lines += ["", f"At {last['size']}, outside scoring took "
              f"{last['outside_scoring_s'] / read:.0f}× one read of the sources without the "
              f"cache and {last['outside_scoring_cached_s'] / read:.0f}× with it{growth}."]
    return "\n".join(lines + ["", caption(d)])


def kin_zoo_result(root: Path, seed: int) -> dict:
    """What `kinmerge zoo check` measures on a kin zoo, as the JSON of block zoo-kin:
    every model's held-out scores, the experts' pcc, and the task-arithmetic merges."""
    from kinmerge.zoo.properties import composition, measure

    from tools.results.collect import machine
    return {"name": f"zoo-kin-seed{seed}", "benchmark": "zoo",
            "command": f"python -m tools.results kin-zoo {seed}", "machine": machine(),
            "date": datetime.date.today().isoformat(),
            "note": "Held-out exact match, 200 prompts a skill; merges: task arithmetic, "
                    "weight 0.8.",
            "seed": seed, **measure(root), "composition": composition(root)}


def kin_zoo_sentence(d: dict) -> str:
    """The kin zoo's measured kinship and composition, in one sentence."""
    skill = d["skills"]
    same = [v for k, v in d["pcc"].items() if skill[k.split("|")[0]] == skill[k.split("|")[1]]]
    cross = [v for k, v in d["pcc"].items() if skill[k.split("|")[0]] != skill[k.split("|")[1]]]
    (names, scores), = d["composition"]["all"].items()
    mean = sum(scores.values()) / len(scores)
    best, pair = max((sum(v.values()) / len(v), k) for k, v in d["composition"]["pairs"].items())
    return (f"On seed {d['seed']}, experts of one skill have pcc {min(same):.2f}–{max(same):.2f}, "
            f"across skills {min(cross):.2f}–{max(cross):.2f}; the three-skill merge "
            f"({names.replace('+', ' + ')}) keeps "
            + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
            + f" (mean {mean:.3f}) against {best:.3f} for the best pair "
            f"({pair.replace('+', ' + ')}).\n\n" + caption(d))


def _diff(v: dict) -> str:
    if not v["differ"]:
        return "identical"
    t = "tensor differs" if v["differ"] == 1 else "tensors differ"
    sci = f"{v['max_abs']:.1e}".replace("e-0", "e-")  # 1.2e-7, as the docs write it
    return f"{v['differ']} {t} ({v['elements']:,} elements, ≤ {sci})"


THREAD_CASES = {"slerp_gradient": "slerp, gradient `t`", "model_stock": "model_stock",
                "karcher": "karcher"}


def thread_parity_table(d: dict) -> str:
    """thread_parity.py's `threads` part: which tensors follow the thread count."""
    cols = ["mergekit 1 vs 2 threads", "kinmerge threads=1 vs 2",
            "kinmerge vs mergekit at 1 thread"]
    head = ["recipe", "mergekit, 1 vs 2 threads", "kinmerge, 1 vs 2 threads",
            "kinmerge vs mergekit at 1 thread"]
    lines = [_row(head), _row(["---"] * len(head))]
    for case, label in THREAD_CASES.items():
        lines.append(_row([label, *(_diff(d["results"][case][c]) for c in cols)]))
    sh = d["shape"]
    n = d["results"]["karcher"]["kinmerge threads=1 vs 2"]["tensors"]
    return "\n".join(lines + ["", caption({**d, "note": (
        f"mergekit {d['mergekit']}, torch {d['torch']}; a synthetic float32 Llama with "
        f"{sh['layers']} layers and {sh['hidden']} × {sh['intermediate']} MLP matrices, {n} "
        "tensors.")})])


def topk_parity(d: dict) -> str:
    """thread_parity.py's `topk` part, as the sentence of the tie-order section."""
    names = {"ties_bf16": "TIES", "breadcrumbs_bf16": "breadcrumbs"}
    same = [k for k in d["results"]["ties_bf16"] if k.startswith("mergekit")]
    identical = all(not d["results"][c][k]["differ"] for c in names for k in same)
    exact = all(not d["results"][c]["kinmerge mergekit order vs mergekit"]["differ"]
                for c in names)
    stable = [d["results"][c]["kinmerge stable order vs mergekit"] for c in names]
    every = all(v["differ"] == v["tensors"] for v in stable)
    return (f"Measured with `benchmarks/thread_parity.py topk` (bfloat16 Llama, "
            f"{d['shape']['layers']} layers, {stable[0]['tensors']} tensors; mergekit "
            f"{d['mergekit']}, {d['date']}): TIES and breadcrumbs, three runs at one thread "
            f"and one each at 2 and 4 threads, {'all identical' if identical else 'NOT all identical'}"
            f"; kinmerge's `mergekit` order {'equal to them bit for bit' if exact else 'NOT equal to them'}"
            f"; the `stable` order differs in {'every tensor' if every else 'some tensors'} ("
            + "; ".join(f"{names[c]}: {v['elements']:,} elements, up to {v['max_abs']:.2f}"
                        for c, v in zip(names, stable))
            + f"). From `benchmarks/results/{d['name']}.json` ({d['machine']}).")


# block name -> (the JSON under benchmarks/results/ it is rendered from, renderer)
BLOCKS = {
    "startup": ("startup", startup_table),
    "merge-loaded": ("merge-loaded", merge_table),
    "merge-quiet": ("merge-quiet", merge_table),
    "merge-busy": ("merge-busy", busy_table),
    "merge-threads": ("merge-threads", merge_table),
    "merge-dare-ahead": ("merge-dare-ahead", merge_table),
    "kinship": ("kinship-322M", kinship_table),
    "kinship-drift": ("kinship-322M", kinship_drift),
    "kinship-drift-guide": ("kinship-322M", kinship_drift),
    "zoo-kin": ("zoo-kin-seed0", kin_zoo_sentence),
    "candidates": ("candidates", candidates_table),
    "thread-parity": ("thread-parity", thread_parity_table),
    "topk-parity": ("thread-parity", topk_parity),
}
# the page each block lives on
PAGES = {"docs/concepts/performance.md": ("startup", "merge-loaded", "merge-quiet", "merge-busy",
                                         "merge-threads", "merge-dare-ahead"),
         "docs/concepts/kinship-metrics.md": ("kinship", "kinship-drift"),
         "docs/guides/kinship.md": ("kinship-drift-guide",),
         "docs/guides/zoo.md": ("zoo-kin",),
         "docs/guides/evolve.md": ("candidates",),
         "docs/reference/mergekit.md": ("thread-parity", "topk-parity")}


def read(source: str, root: Path = Path(".")) -> dict:
    return json.loads((root / RESULTS_DIR / f"{source}.json").read_text())


def render(name: str, root: Path = Path(".")) -> str:
    source, fn = BLOCKS[name]
    return fn(read(source, root))


def current(page: str, name: str, root: Path = Path(".")) -> bool:
    return block_text((root / page).read_text(), name, tag=TAG) == render(name, root)


def write_source(data: dict, root: Path = Path(".")) -> list[Path]:
    """Write one benchmark's JSON (data["name"]) and rewrite every block read from it."""
    path = root / RESULTS_DIR / f"{data['name']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    names = {n for n, (src, _) in BLOCKS.items() if src == data["name"]}
    return [path, *write_blocks(root, names)]


def write_blocks(root: Path = Path("."), names: set[str] | None = None) -> list[Path]:
    """Rewrite the blocks `names` (default: all) from their committed JSON."""
    written = []
    for page, blocks in PAGES.items():
        todo = [n for n in blocks if names is None or n in names]
        if not todo:
            continue
        path = root / page
        text = path.read_text()
        for n in todo:
            text = replace_block(text, n, render(n, root), tag=TAG)
        path.write_text(text)
        written.append(path)
    return written
