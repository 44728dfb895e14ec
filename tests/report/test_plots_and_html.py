"""Plots are real images; the report embeds them and the run's tables."""
import json
import re
import struct

import pytest

from kinmerge.report import write_report, write_run_plots
from kinmerge.report.plots import kinship_vs_gain, pearson

PLOTS = ["fitness.png", "topk_kinship.png", "kinship_vs_gain.png", "family.png"]


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


def test_breed_plots_are_real_images(breed_run):
    written = write_run_plots(breed_run)
    assert sorted(p.name for p in written) == sorted(PLOTS)
    for p in written:
        w, h = png_size(p)
        assert w >= 400 and h >= 250 and p.stat().st_size > 8_000, p


def test_pearson_matches_numpy():
    np = pytest.importorskip("numpy")
    xs, ys = [0.1, 0.5, 0.9, 0.95], [0.3, 0.2, 0.05, 0.01]
    assert pearson(xs, ys) == pytest.approx(np.corrcoef(xs, ys)[0, 1], abs=1e-12)
    assert pearson([1, 2], [3, 4]) is None and pearson([1, 1, 1], [1, 2, 3]) is None


def test_scatter_titles_its_correlation(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    out = kinship_vs_gain([(0.1, 0.3), (0.5, -0.2), (0.9, 0.05), (0.95, 0.01)],
                          tmp_path / "s.svg")
    assert "Pearson r = " in out.read_text() or out.stat().st_size > 5_000


def test_report_embeds_images_and_tables(breed_run):
    page = write_report(breed_run).read_text()
    summary = json.loads((breed_run / "summary.json").read_text())
    imgs = re.findall(r"<img src='data:image/png;base64,[A-Za-z0-9+/=]{1000,}'", page)
    assert len(imgs) == len(PLOTS)
    assert "src='http" not in page and "src=\"http" not in page  # self-contained
    assert "<h2>Generations</h2>" in page and "<h2>history.csv" in page
    assert summary["stop_reason"] in page and summary["best_model"] in page
    for g in summary["generations"]:
        assert f"{g['top_k_kinship']:.4g}" in page
    assert "id='render-check'" in page


def test_report_works_for_any_run_folder(evolve_like):
    page = write_report(evolve_like).read_text()
    assert page.count("<img ") == 1 and "a&lt;b&gt;" in page  # escaped, not markup
    assert "best_search" in page


def test_report_command(breed_run, tmp_path):
    from click.testing import CliRunner

    from kinmerge.cli import main

    target = tmp_path / "r.html"
    r = CliRunner().invoke(main, ["report", str(breed_run), "--out", str(target)])
    assert r.exit_code == 0, r.output
    assert target.read_text().startswith("<!DOCTYPE html>")
