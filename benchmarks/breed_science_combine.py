"""Join the seeds of several `breed_science.py` runs into one analysis, as the
pre-registration picks them (docs/breed-preregistration.md, "Seeds").

    .venv/bin/python benchmarks/breed_science_combine.py --parts runs/a runs/b \\
        --first-passing 10 --out runs/science-kin-ta [--write-docs]

The report seeds can be bred by several processes at once (`breed_science.py --seeds 100 ..
114 --out runs/a` beside `--seeds 115 .. 119 --out runs/b`): each writes its own
science.json. This reads them, checks that they ran the same experiment (preset, operator,
budget, strategies), and keeps the seeds the pre-registration names: in order from the
first, every seed up to and including the `--first-passing`-th whose zoo passes its check
(the failed ones among them are kept, flagged, as a single run would keep them). A seed
missing before that point is an error (run it); seeds bred beyond it are left out of the
analysis and listed in `meta.beyond`. Then it runs breed_science.py's own analysis on the
kept runs (nothing is bred again and no held-out score is recomputed) and writes what a
single run writes.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # breed_science.py, beside this

import breed_science as B  # noqa: E402

SAME = ("budget", "preset", "operator", "operator_name")


class CombineError(ValueError):
    pass


def load_parts(dirs: list[Path]) -> list[dict]:
    parts = []
    for d in dirs:
        f = d / "science.json"
        if not f.is_file():
            raise CombineError(f"{f}: no science.json (has breed_science.py finished there?)")
        try:
            part = json.loads(f.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CombineError(f"{f}: not JSON ({e}); rerun breed_science.py there") from None
        if not (isinstance(part, dict) and isinstance(part.get("meta"), dict)
                and part.get("zoos") and isinstance(part.get("zoos"), list)
                and isinstance(part.get("runs"), list)):
            raise CombineError(f"{f}: not a breed_science.py result (needs meta, a non-empty "
                               "zoos list and runs); rerun breed_science.py there")
        parts.append(part)
    return parts


def positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {n}")
    return n


def pick(parts: list[dict], first_passing: int) -> tuple[list[dict], list[dict], list[int]]:
    """(zoos, runs, seeds beyond the pick) as the pre-registration picks them."""
    for key in SAME:
        values = {json.dumps(p["meta"].get(key), sort_keys=True) for p in parts}
        if len(values) > 1:
            raise CombineError(f"the parts ran different experiments: {key} is "
                               + " / ".join(sorted(values)))
    zoos: dict[int, dict] = {}
    runs: dict[tuple[int, str], dict] = {}
    for p in parts:
        for z in p["zoos"]:
            if z["seed"] in zoos and zoos[z["seed"]]["digest"] != z["digest"]:
                raise CombineError(f"seed {z['seed']} has two different zoos in the parts")
            zoos[z["seed"]] = z
        for r in p["runs"]:
            runs[r["seed"], r["strategy"]] = r
    bred = {k: frozenset(s for (seed, s) in runs if seed == k) for k in zoos}
    # a failed zoo may be left unbred (breed_science.py --skip-failed); every other seed
    # must have been bred the same ways
    if len({v for v in bred.values() if v}) != 1 or any(
            not v and zoos[k]["ok"] for k, v in bred.items()):
        raise CombineError("the seeds were not all bred with the same strategies")
    order = sorted(zoos)
    kept, passed = [], 0
    for seed in range(order[0], order[-1] + 1):
        if passed == first_passing:
            break
        if seed not in zoos:
            raise CombineError(f"seed {seed} is missing from the parts, and the pick needs "
                               f"it ({passed} of {first_passing} passing zoos so far): "
                               f"breed it")
        kept.append(seed)
        passed += bool(zoos[seed]["ok"])
    beyond = [s for s in order if s not in kept]
    return ([zoos[s] for s in kept], [r for (s, _), r in sorted(runs.items()) if s in kept],
            beyond)


def combine(dirs: list[Path], first_passing: int) -> dict:
    from tools.results.collect import meta
    parts = load_parts(dirs)
    zoos, runs, beyond = pick(parts, first_passing)
    seeds = [z["seed"] for z in zoos]
    order = list(dict.fromkeys(r["strategy"] for p in parts for r in p["runs"]))
    runs.sort(key=lambda r: (r["seed"], order.index(r["strategy"])))
    first = parts[0]["meta"]
    passing = sum(z["ok"] for z in zoos)
    logging.info("seeds %s: %d passing zoos of %d; beyond the pick: %s", seeds, passing,
                 len(zoos), beyond or "none")
    budget = first["budget"]
    return {"meta": {**meta(tuple(seeds)), **{k: first[k] for k in SAME},
                     "first_passing": first_passing, "passing": passing, "beyond": beyond,
                     "parts": [{"dir": str(d), **p["meta"]} for d, p in zip(dirs, parts)]},
            "zoos": zoos, "runs": runs, **B.analyse(runs, zoos, budget)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", type=Path, nargs="+", required=True,
                    help="folders breed_science.py wrote (each with science.json)")
    ap.add_argument("--first-passing", type=positive, default=10,
                    help="keep seeds in order up to this many passing zoos (default 10)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--block", default="breed-science",
                    help="the docs block (and docs/BLOCK.json) --write-docs rewrites: "
                         "breed-science (the primary family and operator) or another, "
                         "e.g. breed-science-ties")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        data = combine(args.parts, args.first_passing)
    except CombineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    B.write_outputs(data, args.out, args.write_docs, args.block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
