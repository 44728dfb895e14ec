"""Kinship-guided breeding against its controls on a zoo family, over seeds.

    .venv/bin/python benchmarks/breed_science.py --seeds 100 101 ... --out DIR
    .venv/bin/python benchmarks/breed_science.py --seeds 0 --operator ties --out DIR

For each seed the zoo preset (`kin` by default) is built (cached after the first time, 6-8
min each on 2 cores, under the zoo's one-thread training policy) and checked with `zoo check`'s
properties: a zoo that fails is recorded in `zoos` with what it lacks and its runs are flagged
`zoo_ok: false` (kept out of the primary comparisons, `compare`; `compare_all` has every
seed); `--skip-failed` does not breed it at all. Then the experts are bred six ways at the
same counted budget (see tools/results/science.py: greedy, explore, predicted and their
controls greedy_full, random_partner, random_pairs), and the winner of each run is scored on
the held-out prompts.

Writes DIR/science.json:
  meta       machine, torch, seeds, budget, preset, operator, date, load
  zoos       per seed: digest, path, ok, problems, build seconds
  runs       per seed and strategy: seed, strategy, best_heldout, evals_to_best,
             evaluations, trace (best search score after each counted evaluation), best,
             kinship_measured, kinship_for_selection, seconds, zoo_ok, ...
  children   every distinct child (content hash), the strategies that made it, its
             parents' kinship in cs, pcc and ed, gain, related (parents share a skill)
  compare, compare_all    the pre-registered paired comparisons at the full budget
  anytime    the same comparisons at every budget (per seed, mean, band)
  curves     best search score so far per strategy at every budget (mean, band)
  correlation, honest_correlation   kinship against gain (science.py)
and DIR/science.md (the tables) and DIR/*.png (figures). Rerunning with the same DIR reuses
every finished breed run (each is resumable). With --write-docs also docs/breed-science.json,
the figures under docs/figures/ and the `results:breed-science` block of docs/results.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/ lives at the repo root

from tools.results import science as S  # noqa: E402
from tools.results.science_render import figures, render, report  # noqa: E402

# the merge operators, frozen in docs/breed-preregistration.md
OPERATORS = {
    "ta": {"merge_method": "task_arithmetic", "model_parameters": {"weight": 0.8},
           "dtype": "float32"},
    "ties": {"merge_method": "ties", "model_parameters": {"weight": 0.8, "density": 0.5},
             "parameters": {"normalize": False}, "dtype": "float32"},
}
BUDGET = 40  # evaluations a run, the pool's included (examples/breed-kin.yml has the same)


def check_zoo_once(root: Path) -> dict:
    """`zoo check`'s verdict on the zoo at `root`, measured once and kept beside it."""
    from kinmerge.zoo.properties import check_zoo
    cached = root / "check.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    t0 = time.perf_counter()
    problems = check_zoo(root)
    got = {"ok": not problems, "problems": problems,
           "seconds": round(time.perf_counter() - t0, 1)}
    cached.write_text(json.dumps(got, indent=1) + "\n")
    return got


def build_zoo(seed: int, preset: str) -> tuple[Path, dict]:
    from kinmerge.zoo.cache import zoo
    from kinmerge.zoo.family import ZooConfig
    cfg = ZooConfig.preset(preset)
    t0 = time.perf_counter()
    root = zoo(cfg, seed=seed)
    built = round(time.perf_counter() - t0, 1)
    verdict = check_zoo_once(root)
    logging.info("seed %d: zoo %s %s", seed, root,
                 "passes its check" if verdict["ok"] else
                 "FAILS its check: " + "; ".join(verdict["problems"]))
    return root, {"seed": seed, "digest": cfg.digest(seed), "path": str(root),
                  "build_seconds": built, **verdict}


def run_seed(seed: int, root: Path, zoo_ok: bool, out: Path, budget: int,
             strategies: list[str], operator: dict) -> list[dict]:
    from kinmerge.search.breed import breed
    manifest = json.loads((root / "zoo.json").read_text())
    pool_skills = {str(root / m["path"]): m["skill"] for m in manifest["models"].values()
                   if m["skill"]}
    runs = []
    for name in strategies:
        cfg = S.breed_config(root, seed, operator, budget)
        cfg.update(S.STRATEGIES[name])
        run_out = out / f"seed{seed}" / name
        logging.info("seed %d, %s: breeding into %s", seed, name, run_out)
        t0 = time.perf_counter()
        breed(cfg, run_out, plots=False)
        seconds = round(time.perf_counter() - t0, 1)
        run = S.read_run(run_out, pool_skills)
        runs.append({"seed": seed, "strategy": name, "zoo": str(root), "zoo_ok": zoo_ok,
                     **run, "seconds": seconds,
                     "best_heldout": heldout(root, cfg, run["best_path"])})
    return runs


def heldout(root: Path, cfg: dict, model: str) -> float:
    """The winner's mean exact match on the held-out prompts (200 a skill, never searched)."""
    from kinmerge.evaluate import ExactMatch
    scores = [v for t in cfg["fitness"]["tasks"]
              for v in ExactMatch(t["heldout"], name=t["name"])(model).values()]
    return sum(scores) / len(scores)


def add_kinship(children: list[dict], base_of: dict[int, str]) -> None:
    """Parent kinship in every metric, measured once per pair of parents."""
    from kinmerge.kinship import kinship
    cache: dict[tuple, dict] = {}
    for c in children:
        key = tuple(sorted(c["paths"]))
        if key not in cache:
            k = kinship(*key, base=base_of[c["seed"]], metrics=list(S.METRICS))
            cache[key] = {m: float(k[m]) for m in S.METRICS}
        c["kinship"] = cache[key]


def analyse(runs: list[dict], zoos: list[dict], budget: int) -> dict:
    """Every comparison and correlation of science.json from the runs (no breeding)."""
    strategies = list(dict.fromkeys(r["strategy"] for r in runs))
    passing = sorted(z["seed"] for z in zoos if z["ok"])
    pairs = [(a, b) for a, b in S.PAIRS if {a, b} <= set(strategies)]
    S.add_hashes(runs)
    children = S.unique_children(runs)
    add_kinship(children, {r["seed"]: str(Path(r["zoo"]) / "base") for r in runs})
    return {"children": children,
            "correlation": S.kinship_vs_gain(children),
            "honest_correlation": S.honest_correlation(children),
            "compare": {f"{a}_vs_{b}": S.compare(runs, a, b, passing) for a, b in pairs},
            "compare_all": {f"{a}_vs_{b}": S.compare(runs, a, b) for a, b in pairs},
            "anytime": {f"{a}_vs_{b}": S.anytime(runs, a, b, budget, passing)
                        for a, b in pairs},
            "curves": {s: S.curve(runs, s, budget, passing) for s in strategies}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budget", type=int, default=BUDGET, help="evaluations per run (pool included)")
    ap.add_argument("--strategies", nargs="+", default=list(S.STRATEGIES),
                    choices=list(S.STRATEGIES))
    ap.add_argument("--preset", default="kin", help="zoo preset (ZooConfig.preset)")
    ap.add_argument("--operator", default="ta", choices=list(OPERATORS),
                    help="merge operator: ta (task arithmetic, weight 0.8) or ties")
    ap.add_argument("--skip-failed", action="store_true",
                    help="do not breed zoos that fail their check (they are still recorded)")
    ap.add_argument("--out", type=Path, default=Path("runs/breed-science"))
    ap.add_argument("--write-docs", action="store_true",
                    help="also write docs/breed-science.json, docs/figures/ and the docs block")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from tools.results.collect import meta
    operator = OPERATORS[args.operator]
    zoos, runs = [], []
    for seed in args.seeds:
        root, z = build_zoo(seed, args.preset)
        zoos.append(z)
        if z["ok"] or not args.skip_failed:
            runs += run_seed(seed, root, z["ok"], args.out, args.budget, args.strategies,
                             operator)
    data = {"meta": {**meta(tuple(args.seeds)), "budget": args.budget, "preset": args.preset,
                     "operator": operator, "operator_name": args.operator},
            "zoos": zoos, "runs": runs, **analyse(runs, zoos, args.budget)}
    write_outputs(data, args.out, args.write_docs)
    return 0


def docs_copy(data: dict) -> dict:
    """science.json without the child-by-child records (the runs' `children` and the
    distinct `children`: most of its size, read only by the figures and the correlations,
    which are computed before this copy is made); DIR/science.json keeps them."""
    return {**{k: v for k, v in data.items() if k != "children"},
            "runs": [{k: v for k, v in r.items() if k != "children"} for r in data["runs"]]}


def write_outputs(data: dict, out: Path, write_docs: bool = False,
                  block: str = "breed-science") -> None:
    """science.json, science.md and the figures in `out`; with `write_docs` also the docs'
    copies: docs/BLOCK.json, the figures under docs/figures/ (named BLOCK-NAME.png for a
    block other than the primary one) and the `results:BLOCK` block of docs/results.md."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "science.json").write_text(json.dumps(data, indent=1) + "\n")
    pngs = figures(data, out)
    text = report(data)
    (out / "science.md").write_text(text + "\n")
    print(text)
    if write_docs:
        from tools.results.render import replace_block
        Path("docs/figures").mkdir(parents=True, exist_ok=True)
        prefix = "" if block == "breed-science" else f"{block}-"
        for p in pngs:
            shutil.copy(p, Path("docs/figures") / f"{prefix}{p.name}")
        Path(f"docs/{block}.json").write_text(json.dumps(docs_copy(data), indent=1) + "\n")
        page = Path("docs/results.md")
        page.write_text(replace_block(page.read_text(), block, render(data)))
        print(f"rewrote docs/results.md (results:{block}), docs/{block}.json, docs/figures/")


if __name__ == "__main__":
    sys.exit(main())
