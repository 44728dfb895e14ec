"""Stand-ins for breeding tests: a deterministic fake fitness and, while kinmerge.kinship is
not there, a float64 numpy kinship (concatenated deltas, docs/concepts/kinship-metrics.md)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


def weights(model_dir: str | Path) -> dict[str, np.ndarray]:
    return {k: v.astype(np.float64) for k, v in
            load_file(str(Path(model_dir) / "model.safetensors")).items()}


def flat_delta(model: str | Path, base: str | Path) -> np.ndarray:
    m, b = weights(model), weights(base)
    return np.concatenate([(m[k] - b[k]).ravel() for k in sorted(b)])


def numpy_kinship(a: str, b: str, base: str, metric: str) -> float:
    x, y = flat_delta(a, base), flat_delta(b, base)
    if metric == "pcc":
        return float(np.corrcoef(x, y)[0, 1])
    if metric == "cs":
        return float(x @ y / np.sqrt((x @ x) * (y @ y)))
    return float(np.linalg.norm(x - y))


def kinship_fn():
    """kinmerge.kinship when it has landed, else the numpy stand-in."""
    try:
        from kinmerge.search.breed.fitness import kinmerge_kinship
        from kinmerge.kinship import kinship  # noqa: F401

        return kinmerge_kinship
    except Exception:  # not there yet, or mid-edit in a shared tree
        return numpy_kinship


class TargetFitness:
    """Closeness of a model's delta to a target delta, in (0, 1]; counts its calls.

    With the target the mean of the fine-tunes' deltas, children of merges score above their
    parents, as a real merge of complementary experts would."""

    def __init__(self, base: str, target: np.ndarray, fail_after: int | None = None):
        self.base, self.target = base, target
        self.calls: list[str] = []
        self.fail_after = fail_after

    def __call__(self, model_dir: Path) -> dict[str, float]:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("simulated kill")
        self.calls.append(Path(model_dir).name)
        d = flat_delta(model_dir, self.base) - self.target
        return {"closeness": float(1.0 / (1.0 + 10.0 * np.sqrt(d @ d)))}


def mean_target(family: dict, scale: float = 1.0) -> np.ndarray:
    return scale * np.mean([flat_delta(f, family["base"]) for f in family["ft"]], axis=0)



def delta_size(model_dir: Path) -> float:
    """A fitness a breed.yml can name (`breed_standins:delta_size`): the mean square of the
    model's delta from the base named by $BREED_TEST_BASE."""
    import os

    x = flat_delta(model_dir, os.environ["BREED_TEST_BASE"])
    return float((x * x).mean())


def slow_logged(model_dir: Path) -> float:
    """`breed_standins:slow_logged`: TargetFitness of the pool in $BREED_TEST_POOL, slowly, logging each call to
    $BREED_TEST_LOG (for the kill -9 test)."""
    import os
    import time

    time.sleep(0.15)
    base, pool = os.environ["BREED_TEST_BASE"], os.environ["BREED_TEST_POOL"].split(os.pathsep)
    value = TargetFitness(base, mean_target({"base": base, "ft": pool}))(model_dir)["closeness"]
    with open(os.environ["BREED_TEST_LOG"], "a") as f:
        f.write(Path(model_dir).name + "\n")
    return value


class TargetScore(TargetFitness):
    """TargetFitness in the one fitness signature, f(candidate, split) (picklable, so
    parallel workers can be given it)."""

    def __call__(self, candidate, split: str = "search") -> dict[str, float]:  # type: ignore[override]
        return super().__call__(candidate.path)


class FailOnce(TargetScore):
    """TargetScore that logs every model it scores to `log` and fails on `victim` the first
    time (a marker file beside the log remembers), as a crashed worker would."""

    def __init__(self, base, target, log: str, victim: str):
        super().__init__(base, target)
        self.log, self.victim = log, victim

    def __call__(self, candidate, split: str = "search") -> dict[str, float]:  # type: ignore[override]
        name = Path(candidate.path).name
        marker = Path(self.log + ".failed")
        if name == self.victim and not marker.exists():
            marker.write_text("x")
            raise RuntimeError(f"worker crashed on {name}")
        with open(self.log, "a") as f:
            f.write(name + "\n")
        return super().__call__(candidate, split)


class SlowFirst(TargetScore):
    """TargetScore that takes `delay` seconds longer on each generation's first child
    (g1-01, g2-01, ...), so parallel workers finish a generation's jobs out of plan order."""

    def __init__(self, base, target, delay: float = 0.6):
        super().__init__(base, target)
        self.delay = delay

    def __call__(self, candidate, split: str = "search") -> dict[str, float]:  # type: ignore[override]
        if Path(candidate.path).name.endswith("-01"):
            time.sleep(self.delay)
        return super().__call__(candidate, split)


def cli_breed_yml(pool: dict, tmp_path: Path, monkeypatch, **extra) -> Path:
    """A breed.yml for the command-line tests: three pool models, SLERP at 0.5, this
    module's `delta_size` as the fitness (importable by name), 5 evaluations; `extra` keys
    are added."""
    import yaml
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.setenv("BREED_TEST_BASE", pool["base"])
    cfg = {"pool": pool["ft"][:3], "base_model": pool["base"],
           "fitness": {"function": "breed_standins:delta_size"},
           "operator": {"merge_method": "slerp", "parameters": {"t": 0.5}, "dtype": "float32"},
           "budget": {"evaluations": 5}, **extra}
    f = tmp_path / "breed.yml"
    f.write_text(yaml.safe_dump(cfg))
    return f
