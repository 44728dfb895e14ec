"""`python -m tools.results run RUNS_DIR [SEEDS]` (SEEDS like 0,1,2, the default), then
`python -m tools.results write` (the docs from docs/results.json alone).
`python -m tools.results bench`: the benchmark blocks from benchmarks/results/*.json alone.
`python -m tools.results kin-zoo [SEED]`: measure the kin zoo of SEED (0; trained on first use,
5-8 min) into benchmarks/results/zoo-kin-seedSEED.json and rewrite the block reading it."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

RESULTS = Path("docs/results.json")


def main(argv: list[str]) -> int:
    from tools.results.render import write_docs
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv == ["bench"]:
        from tools.results.bench import write_blocks
        for path in write_blocks():
            print(f"rewrote {path}")
        return 0
    if argv[:1] == ["kin-zoo"] and len(argv) <= 2:
        from kinmerge.zoo import zoo
        from kinmerge.zoo.family import ZooConfig

        from tools.results.bench import kin_zoo_result, write_source
        seed = int(argv[1]) if len(argv) == 2 else 0
        for path in write_source(kin_zoo_result(zoo(ZooConfig.kin(), seed=seed), seed)):
            print(f"wrote {path}")
        return 0
    if argv[:1] == ["run"] and len(argv) in (2, 3):
        import torch

        from tools.results.collect import SEEDS, run_all
        torch.set_num_threads(1)
        seeds = tuple(int(x) for x in argv[2].split(",")) if len(argv) == 3 else SEEDS
        data = run_all(Path(argv[1]), seeds)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {RESULTS}")
    elif argv != ["write"]:
        print(__doc__, file=sys.stderr)
        return 2
    for path in write_docs(json.loads(RESULTS.read_text()), Path("."), Path("examples")):
        print(f"rewrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
