"""Greedy vs exploration vs predicted pair selection on a zoo family, over seeds.

    .venv/bin/python benchmarks/breed_science.py                 # seeds 0 1 2
    .venv/bin/python benchmarks/breed_science.py --write-docs    # and rewrite the docs block

On 2 cores: ~10 min of breeding, plus 5-8 min for each seed's kin zoo the first time.
For each seed the `kin` zoo preset is built (cached after the first time),
then bred three ways at the same evaluation budget (see tools/results/science.py). Writes
OUT/science.json, prints the table, draws OUT/{best_per_generation,topk_kinship,
kinship_vs_gain}.png; with --write-docs also docs/breed-science.json, the figures under
docs/figures/ and the `results:breed-science` block of docs/results.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/ lives at the repo root

from tools.results import science as S  # noqa: E402
from tools.results.science_render import figures, render  # noqa: E402

OPERATOR = {"merge_method": "task_arithmetic", "model_parameters": {"weight": 0.8},
            "dtype": "float32"}
PAIRS = [("explore", "greedy"), ("predicted", "greedy"), ("predicted", "explore")]
BUDGET = 40  # evaluations a run, the pool's included (examples/breed-kin.yml has the same)


def run_seed(seed: int, out: Path, budget: int, strategies: list[str], preset: str) -> list[dict]:
    from kinmerge.search.breed import breed
    from kinmerge.zoo.cache import zoo
    from kinmerge.zoo.family import ZooConfig
    root = zoo(ZooConfig.preset(preset), seed=seed)
    runs = []
    for name in strategies:
        cfg = S.breed_config(root, seed, OPERATOR, budget)
        cfg.update(S.STRATEGIES[name])
        run_out = out / f"seed{seed}" / name
        logging.info("seed %d, %s: breeding into %s", seed, name, run_out)
        breed(cfg, run_out, plots=False)
        run = S.read_run(run_out)
        runs.append({"seed": seed, "strategy": name, "zoo": str(root), **run,
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--budget", type=int, default=BUDGET, help="evaluations per run (pool included)")
    ap.add_argument("--strategies", nargs="+", default=list(S.STRATEGIES),
                    choices=list(S.STRATEGIES))
    ap.add_argument("--preset", default="kin", help="zoo preset (ZooConfig.preset)")
    ap.add_argument("--out", type=Path, default=Path("runs/breed-science"))
    ap.add_argument("--write-docs", action="store_true",
                    help="also write docs/breed-science.json, docs/figures/ and the docs block")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from tools.results.collect import meta
    runs = [r for s in args.seeds
            for r in run_seed(s, args.out, args.budget, args.strategies, args.preset)]
    children = S.unique_children(runs)
    add_kinship(children, {r["seed"]: str(Path(r["zoo"]) / "base") for r in runs})
    data = {"meta": {**meta(tuple(args.seeds)), "budget": args.budget, "preset": args.preset,
                     "operator": OPERATOR},
            "runs": runs, "children": children,
            "correlation": S.kinship_vs_gain(children),
            "compare": {f"{a}_vs_{b}": S.compare(runs, a, b) for a, b in PAIRS
                        if {a, b} <= set(args.strategies)}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "science.json").write_text(json.dumps(data, indent=1) + "\n")
    pngs = figures(data, args.out)
    print(render(data))
    if args.write_docs:
        from tools.results.render import replace_block
        Path("docs/figures").mkdir(parents=True, exist_ok=True)
        for p in pngs:
            shutil.copy(p, Path("docs/figures") / p.name)
        Path("docs/breed-science.json").write_text(json.dumps(data, indent=1) + "\n")
        page = Path("docs/results.md")
        page.write_text(replace_block(page.read_text(), "breed-science", render(data)))
        print("rewrote docs/results.md (results:breed-science), docs/breed-science.json, "
              "docs/figures/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
