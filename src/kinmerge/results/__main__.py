"""`python -m kinmerge.results run RUNS_DIR` then `python -m kinmerge.results write`."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

RESULTS = Path("docs/results.json")


def main(argv: list[str]) -> int:
    from kinmerge.results.render import write_docs
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv[:1] == ["run"] and len(argv) == 2:
        import torch

        from kinmerge.results.collect import run_all
        torch.set_num_threads(1)
        data = run_all(Path(argv[1]))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {RESULTS}")
    elif argv != ["write"]:
        print(__doc__, file=sys.stderr)
        return 2
    for path in write_docs(json.loads(RESULTS.read_text()), Path("README.md"), Path("examples")):
        print(f"rewrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
