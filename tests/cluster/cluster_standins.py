"""What the cluster tests run on Ray workers: fitnesses that can hold a job on its node while
the test removes that node (a "trap"), and otherwise score exactly as the plain ones do.

The trap is armed by the test, per run, with a file in the directory named by
$KINMERGE_TEST_TRAP (set only in the worker nodes' environment, so the driver's own
sequential runs never trap): `arm` holds "SPLIT N", meaning the N-th call on SPLIT. That call
writes its Ray node id to `trapped` and sleeps until the node is gone; every call leaves a
line in `calls` (split, what it scored, node), so a test can count what ran where.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import evo_fitness
from breed_standins import TargetScore

HOLD_S = 120.0  # the node is removed long before this; a trap never fires twice


def trap(split: str, what: str) -> None:
    d = os.environ.get("KINMERGE_TEST_TRAP")
    if not d:
        return
    import ray

    node = ray.get_runtime_context().get_node_id()
    with open(Path(d) / "calls", "a") as f:
        f.write(f"{split} {what} {node}\n")
    k = 1
    while True:  # this call's number on its split, unique across processes
        try:
            os.close(os.open(Path(d) / f"{split}-{k}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            break
        except FileExistsError:
            k += 1
    arm = Path(d) / "arm"
    if arm.exists() and arm.read_text().split() == [split, str(k)]:
        (Path(d) / "trapped.tmp").write_text(node)
        os.replace(Path(d) / "trapped.tmp", Path(d) / "trapped")
        time.sleep(HOLD_S)


def trapped_closeness(candidate, split: str) -> float:
    """evo_fitness.closeness, with the trap (an evolve.yml names it by module:function)."""
    trap(split, f"seed={candidate.merged.plan.recipe.seed}" if candidate.merged
         else Path(candidate.path).name)
    return evo_fitness.closeness(candidate, split)


class TrappedScore(TargetScore):
    """breed_standins.TargetScore, with the trap."""

    def __call__(self, candidate,  # type: ignore[override]
                 split: str = "search") -> dict[str, float]:
        trap(split, Path(candidate.path).name)
        return super().__call__(candidate, split)
