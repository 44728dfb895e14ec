"""Model kinship (Hu et al. 2024): how related fine-tunes of one base are, exactly.

    stats.py    float64 streaming statistics of k delta vectors (centred, chunk-merged)
    metrics.py  cs / pcc / ed from those statistics; the per-tensor ("split") average
    plan.py     which tensors to compare; all input problems reported before any read
    stream.py   the one pass over the models, chunk by chunk, into per-tensor statistics
    measure.py  kinship(a, b, base=...)            -> KinshipResult (metric -> float)
    matrix.py   kinship_matrix([m1..mN], base=...)  -> KinshipMatrix (metric -> N x N)
    report.py   per-layer and per-module-kind breakdown
    plot.py     heatmap and per-layer figures
    compat.py   ModelKinship's float32 arithmetic, for cross-checks only
"""
from typing import TYPE_CHECKING

from kinmerge._lazy import lazy_attributes
from kinmerge.kinship.metrics import METRICS

if TYPE_CHECKING:
    from kinmerge.kinship.matrix import KinshipMatrix, kinship_matrix
    from kinmerge.kinship.measure import KinshipResult, kinship

__all__ = ["kinship", "kinship_matrix", "KinshipResult", "KinshipMatrix", "METRICS"]

# the measuring functions (and torch) load on first use; the metric names are plain data
__getattr__, __dir__ = lazy_attributes(globals(), {
    "kinship": "kinmerge.kinship.measure", "KinshipResult": "kinmerge.kinship.measure",
    "kinship_matrix": "kinmerge.kinship.matrix", "KinshipMatrix": "kinmerge.kinship.matrix"})
