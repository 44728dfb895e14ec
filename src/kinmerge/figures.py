"""Figures without a display: matplotlib's headless backend, and writing a finished figure.

Every plot kinmerge draws (kinship, demo, evolve, breed, the family tree) goes through these
two functions, imported lazily so that commands which draw nothing never load matplotlib.
"""
from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed: servers, CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, out: str | Path, *, dpi: int = 100, tight: bool = True) -> Path:
    """Lay out `fig` (unless `tight` is False: a figure that placed its own axes), write it
    to `out` (the suffix picks the format), and free it."""
    from kinmerge.io.outpath import check_out, write_error

    out = check_out(out, option="figure", folder=False)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if tight:
            fig.tight_layout()
        fig.savefig(out, dpi=dpi)
    except OSError as e:
        raise write_error(e, out) from e
    finally:
        pyplot().close(fig)
    return out
