"""Pictures of kinship: the N x N heatmap, and the per-layer / per-module-kind breakdown.

matplotlib with the Agg backend (no display needed); each function writes one PNG and returns
its path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from kinmerge.kinship.metrics import METRICS, SIMILARITIES
from kinmerge.figures import pyplot, save
from kinmerge.kinship.report import OUTSIDE


def short_label(ref: str) -> str:
    """A readable axis label: a hub id as is, a path by its last component."""
    p = Path(ref)
    return ref if (not p.exists() and ref.count("/") == 1) else (p.name or ref)


def heatmap(values: np.ndarray, labels: Sequence[str], metric: str, out: str | Path,
            title: str | None = None) -> Path:
    """An annotated heatmap of one metric over N models."""
    plt = pyplot()
    n = len(labels)
    size = max(4.0, 0.9 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    similar = metric in SIMILARITIES
    # similarities share a fixed scale so two heatmaps compare; distances use their own range
    kw = dict(vmin=-1.0, vmax=1.0, cmap="RdBu_r") if similar else dict(cmap="viridis_r")
    im = ax.imshow(values, **kw)
    fig.colorbar(im, ax=ax, label=f"{metric} ({METRICS[metric].lower()})")
    names = [short_label(str(x)) for x in labels]
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    if n <= 12:
        for i in range(n):
            for j in range(n):
                dark = similar and abs(values[i, j]) > 0.6
                ax.text(j, i, f"{values[i, j]:.3g}", ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    ax.set_title(title or f"model kinship ({metric})")
    return save(fig, out)


def per_layer(breakdown: dict, out: str | Path, title: str = "kinship per layer") -> Path:
    """Left: each metric by layer index; right: each metric by module kind (bars)."""
    plt = pyplot()
    layers = [r for r in breakdown["layers"] if r["group"] != OUTSIDE]
    kinds = breakdown["kinds"]
    metrics = [m for m in METRICS if kinds and m in kinds[0]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2),
                                      gridspec_kw={"width_ratios": [3, 2]})
    xs = [r["group"] for r in layers]
    dist_ax = None
    for m in metrics:
        ys = [r[m] for r in layers]
        if m in SIMILARITIES:
            left.plot(xs, ys, "o-", label=m)
        else:  # a distance is on another scale: its own axis
            dist_ax = dist_ax or left.twinx()
            dist_ax.plot(xs, ys, "s--", color="tab:gray", label=m)
            dist_ax.set_ylabel("ed (distance)")
    left.set_xlabel("layer")
    left.xaxis.get_major_locator().set_params(integer=True)
    left.set_ylabel("similarity")
    left.grid(alpha=0.3)
    handles = left.get_legend_handles_labels()
    if dist_ax is not None:
        h2 = dist_ax.get_legend_handles_labels()
        handles = (handles[0] + h2[0], handles[1] + h2[1])
    if handles[0]:
        left.legend(*handles, loc="best", fontsize=8)
    sims = [m for m in metrics if m in SIMILARITIES]
    width = 0.8 / max(1, len(sims))
    for k, m in enumerate(sims):
        pos = np.arange(len(kinds)) + (k - (len(sims) - 1) / 2) * width
        right.bar(pos, [r[m] for r in kinds], width, label=m)
    if "ed" in metrics:  # distances on their own axis, as markers
        twin = right.twinx()
        twin.plot(range(len(kinds)), [r["ed"] for r in kinds], "D", color="tab:gray",
                  label="ed")
        twin.set_ylabel("ed (distance)")
        twin.set_ylim(bottom=0)
    right.set_xticks(range(len(kinds)), [r["group"] for r in kinds], rotation=20)
    right.axhline(0, color="black", lw=0.5)
    right.set_title("by module kind")
    if sims:
        right.legend(fontsize=8, loc="upper left")
    fig.suptitle(title)
    return save(fig, out)
