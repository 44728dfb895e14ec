"""Start-up time of the commands users type all day, against a bare `python -c pass`.

    python benchmarks/bench_startup.py              # 9 runs each, medians
    python benchmarks/bench_startup.py --runs 21
    python benchmarks/bench_startup.py --src ../other-checkout/src   # another version
    python benchmarks/bench_startup.py --json startup.json           # the table as JSON too
    python benchmarks/bench_startup.py --write-docs   # benchmarks/results/startup.json + docs

Every run is a fresh process (nothing cached in the interpreter), of this checkout's sources;
the table gives the median and the spread (min-max) of the wall time, and whether the command
imported torch. `import torch` is the row to compare with: it is what every command paid
before the CLI loaded its dependencies on first use. A busy machine scales every row; the
gap to `python -c pass` is what kinmerge itself costs. `kinmerge validate` (with its models)
reads the three-model synthetic family examples/ties.yml names, written once to a temporary
folder before the timing starts.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tools/ lives at the repo root
CLI = ("import sys; sys.argv[0] = 'kinmerge'; from kinmerge.cli import main\n"
       "try:\n    main()\nfinally:\n    sys.stderr.write('TORCH=%d' % ('torch' in sys.modules))")
ROWS = [
    ("python -c pass", ["-c", "pass"]),
    ("import torch", ["-c", "import torch"]),
    ("kinmerge --help", ["-c", CLI, "--help"]),
    ("kinmerge methods", ["-c", CLI, "methods"]),
    ("kinmerge validate --no-models",
     ["-c", CLI, "validate", "examples/ties.yml", "--no-models"]),
    ("kinmerge validate (models)", ["-c", CLI, "validate", "ties.yml"]),
]
FAMILY = '''import sys
from kinmerge.zoo.synthetic import synthetic_llama
kw = dict(layers=3, hidden=16, intermediate=24, vocab=40)
base = synthetic_llama(sys.argv[1] + "/zoo/base", seed=0, **kw)
for seed, name in ((1, "sort"), (2, "rev")):
    synthetic_llama(sys.argv[1] + "/zoo/" + name, base=base, seed=seed, delta=0.05, **kw)
'''


def run_once(args: list[str], src: Path, cwd: Path) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                       text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{args}: exit {r.returncode}\n{r.stderr}")
    torch = "yes" if "TORCH=1" in r.stderr else "no" if "TORCH=0" in r.stderr else "-"
    return wall, torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--src", type=Path, default=ROOT / "src",
                    help="The kinmerge sources to time (default: this checkout's).")
    ap.add_argument("--json", type=Path, default=None,
                    help="Also write the table (and the machine, load and date) as JSON.")
    ap.add_argument("--write-docs", action="store_true",
                    help="Also write benchmarks/results/startup.json and rewrite the docs' "
                         "start-up table from it (docs/concepts/performance.md).")
    opts = ap.parse_args()
    runs, src = opts.runs, opts.src.resolve()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, "-c", FAMILY, tmp], check=True,
                       env={**os.environ, "PYTHONPATH": str(src)})
        (work / "ties.yml").write_text((ROOT / "examples" / "ties.yml").read_text())
        load_before = os.getloadavg()[0]
        for _ in range(runs):  # interleaved, so a burst of load hits every row alike
            for label, args in ROWS:
                cwd = work if label.endswith("(models)") else ROOT
                results.append((label, *run_once(args, src, cwd)))
    base = statistics.median(w for label, w, _ in results if label == ROWS[0][0])
    load = (load_before, os.getloadavg()[0])
    print(f"start-up of {src}: {runs} fresh processes each, {os.cpu_count()} cores, "
          f"load {load[0]:.1f} before, {load[1]:.1f} after")
    table = []
    print(f"{'command':<31} {'median':>8} {'min - max':>16} {'over pass':>10}  torch")
    for label, _ in ROWS:
        walls = [w for lab, w, _ in results if lab == label]
        torch = next(t for lab, _, t in results if lab == label)
        med = statistics.median(walls)
        spread = f"{min(walls):.3f} - {max(walls):.3f}s"
        print(f"{label:<31} {med:>7.3f}s {spread:>16} {med - base:>+9.3f}s  {torch}")
        table.append({"command": label, "median_s": round(med, 4), "min_s": round(min(walls), 4),
                      "max_s": round(max(walls), 4), "over_pass_s": round(med - base, 4),
                      "torch": {"yes": True, "no": False}.get(torch)})  # None: not probed
    if opts.json or opts.write_docs:
        from tools.results.collect import machine
        argv = " ".join(sys.argv[1:]).replace("--write-docs", "").strip()
        data = {"name": "startup", "benchmark": "bench_startup",
                "command": f"benchmarks/bench_startup.py {argv}".strip(),
                "machine": machine(), "date": time.strftime("%Y-%m-%d"), "load": list(load),
                "runs": runs, "python": sys.version.split()[0], "rows": table}
        if opts.json:
            opts.json.write_text(json.dumps(data, indent=1) + "\n")
        if opts.write_docs:
            from tools.results.bench import write_source
            os.chdir(ROOT)
            for path in write_source(data):
                print(f"wrote {path}")


if __name__ == "__main__":
    main()
