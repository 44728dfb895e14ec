"""Data-flow space (Akiba et al. 2024, sec. 3.2): which layers the hidden state runs through.

Slots: A's layers then B's (M = L_A + L_B), repeated r times (T = M r). Genome part 1 is an
indicator per slot, on iff I_t > 0 (gene > 0.5 here, genes live in [0, 1]); the path is the on
slots in slot order, with A's first layer prepended and A's last appended where missing, so
embeddings and the head (taken from A) meet the layers they were trained with. Part 2 is the
M x M matrix W of scales: before path step p the hidden state is multiplied by
W[src(p-1), src(p)] (genes decode linearly onto `scale_range`, 0.5 -> its middle, 1).

The path is exported as an ordinary passthrough recipe; the scales go into config.json under
`kinmerge_dfs` and `load_dfs_model` re-applies them (without them the model is the passthrough
merge, exact when every scale is 1).

>>> space = DfsSpace("zoo/add", 4, "zoo/rev", 4, DfsSpec())           # doctest: +SKIP
>>> path, scales = space.decode(space.x0())                             # doctest: +SKIP
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from kinmerge.evaluate.build import apply_scales
from kinmerge.search.evolve.config import DfsSpec
from kinmerge.io.safe_path import check_folder
from kinmerge.core.recipe import Recipe, load_recipe

ON, OFF = 0.75, 0.25  # initial indicator genes: 1.5 sigma0 from the threshold
CONFIG_KEY = "kinmerge_dfs"


@dataclass(frozen=True)
class Step:
    model: int  # 0 = A, 1 = B
    layer: int


class DfsSpace:
    """The DFS genome over models A (`a`, `la` layers) and B (`b`, `lb` layers)."""

    def __init__(self, a: str, la: int, b: str, lb: int, spec: DfsSpec,
                 dtype: str | None = None):
        self.refs, self.sizes, self.spec, self.dtype = (a, b), (la, lb), spec, dtype
        self.m = la + lb
        self.slots = [self._step(j) for _ in range(spec.repeats) for j in range(self.m)]
        self.n_scales = self.m * self.m if spec.scales == "matrix" else 0

    def _step(self, j: int) -> Step:
        return Step(0, j) if j < self.sizes[0] else Step(1, j - self.sizes[0])

    def _index(self, s: Step) -> int:
        return s.layer + (self.sizes[0] if s.model else 0)

    @property
    def dim(self) -> int:
        return len(self.slots) + self.n_scales

    @property
    def names(self) -> list[str]:
        ind = [f"slot{t:03d}" for t in range(len(self.slots))]
        return ind + [f"w{i:02d}_{j:02d}" for i in range(self.m) for j in range(self.m)
                      ][: self.n_scales]

    def x0(self) -> list[float]:
        """The genome whose path is A's own layers, in order, with every scale 1."""
        ind = [ON if t < self.sizes[0] else OFF for t in range(len(self.slots))]
        return ind + [0.5] * self.n_scales

    def decode(self, genome: Sequence[float]) -> tuple[list[Step], list[float]]:
        """(path, scale before each path step); the first step's scale is always 1."""
        if len(genome) != self.dim:
            raise ValueError(f"genome has {len(genome)} genes, the space {self.dim}")
        t = len(self.slots)
        path = [s for s, g in zip(self.slots, genome[:t]) if g > 0.5]
        first, last = Step(0, 0), Step(0, self.sizes[0] - 1)
        if not path or path[0] != first:
            path.insert(0, first)
        if path[-1] != last:
            path.append(last)
        lo, hi = self.spec.scale_range
        scales = [1.0]
        for prev, cur in zip(path, path[1:]):
            if self.n_scales:
                g = min(max(float(genome[t + self._index(prev) * self.m + self._index(cur)]),
                            0.0), 1.0)
                scales.append(round(lo + g * (hi - lo), 6))
            else:
                scales.append(1.0)
        return path, scales

    def recipe(self, path: Sequence[Step]) -> Recipe:
        """The passthrough recipe stacking `path` (runs of consecutive layers share a slice)."""
        slices: list[dict] = []
        for s in path:
            prev = slices[-1]["sources"][0] if slices else None
            if prev and prev["model"] == self.refs[s.model] and prev["layer_range"][1] == s.layer:
                prev["layer_range"][1] += 1
            else:
                slices.append({"sources": [{"model": self.refs[s.model],
                                            "layer_range": [s.layer, s.layer + 1]}]})
        data = {"merge_method": "passthrough", "slices": slices}
        if self.dtype:
            data["dtype"] = self.dtype
        return load_recipe(data)

    def describe(self, path: Sequence[Step]) -> list[list]:
        return [[self.refs[s.model], s.layer] for s in path]


def write_dfs_config(model_dir: Path, path: list[list], scales: Sequence[float]) -> None:
    """Record the path and scales in `model_dir`/config.json for `load_dfs_model`."""
    f = Path(model_dir) / "config.json"
    config = json.loads(f.read_text())
    config[CONFIG_KEY] = {"path": path, "scales": list(scales)}
    f.write_text(json.dumps(config, indent=2) + "\n")


def load_dfs_model(model_dir: str | Path, **kwargs) -> torch.nn.Module:
    """Load an exported DFS model with its transition scales applied (kwargs: from_pretrained).

    >>> model = load_dfs_model("runs/evo-dfs/best-model")        # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM

    from kinmerge.io.model_json import read_config
    config = read_config(Path(model_dir))  # checked before transformers reads the folder
    check_folder(model_dir)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs)
    if CONFIG_KEY in config:
        apply_scales(model, config[CONFIG_KEY]["scales"])
    return model.eval()
