"""`kinmerge kinship`, `kinmerge kinship-matrix`, `merge_cal`, and the PNGs they write."""
from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from kinmerge.cli import main
from kinmerge.cli.kinship import merge_cal
from kinmerge.kinship import kinship

MK_LINE = re.compile(r"^(?:cs|pcc|ed): Model Kinship based on (Cosine Similarity|Pearson "
                     r"Correlation Coefficient|Euclidean Distance): (-?\d+\.\d+(e-?\d+)?)$")


def run(args, cli=main):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _check_png(path, min_w=400, min_h=250):
    import matplotlib.image as mpimg

    img = mpimg.imread(str(path))
    h, w = img.shape[:2]
    assert w >= min_w and h >= min_h, img.shape
    assert float(np.std(img[..., :3])) > 0.01  # not blank


def test_json_has_metric_keys_with_floats(kin_family):
    f = kin_family
    r = run(["kinship", f["a"], f["c"], "--base", f["base"], "--json", "--no-progress"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert {"cs", "pcc", "ed"} <= set(d)
    assert all(isinstance(d[k], float) for k in ("cs", "pcc", "ed"))
    assert d["n"] > 0 and set(d["norms"]) == {f["a"], f["c"]} and "per_layer" not in d
    want = kinship(f["a"], f["c"], base=f["base"])
    assert d["pcc"] == want["pcc"]
    r = run(["kinship", f["a"], f["c"], "--base", f["base"], "--json", "--metrics", "pcc",
             "--per-layer", "--no-progress"])
    d = json.loads(r.stdout)
    assert "cs" not in d and "ed" not in d and isinstance(d["pcc"], float)
    assert [row["group"] for row in d["per_layer"]["kinds"]][:2] == ["embeddings", "attention"]


def test_table_output_and_per_layer_plot(kin_family, tmp_path):
    f = kin_family
    png = tmp_path / "layers.png"
    r = run(["kinship", f["a"], f["b"], "--base", f["base"], "--per-layer", "--plot", png,
             "--absolute-cosine", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert re.search(r"^\s+cs\s+\d\.\d{6}\s+cosine similarity", r.stdout, re.M)
    assert "kinship by layer" in r.stdout and "kinship by module kind" in r.stdout
    assert "mlp" in r.stdout and "|cos|" in r.stdout
    _check_png(png, min_w=800)


def test_matrix_csv_heatmap_and_json(kin_family, tmp_path):
    f = kin_family
    models = [f["a"], f["b"], f["c"]]
    out_csv, png = tmp_path / "m.csv", tmp_path / "heat.png"
    r = run(["kinship-matrix", *models, "--base", f["base"], "--metric", "cs", "--csv", out_csv,
             "--plot", png, "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "mean pairwise cs" in r.stdout
    rows = list(csv.reader(open(out_csv)))
    assert rows[0] == ["model", *models]
    a = np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    assert a.shape == (3, 3) and np.allclose(a, a.T) and np.allclose(np.diag(a), 1.0)
    assert a[0, 1] == pytest.approx(kinship(f["a"], f["b"], base=f["base"])["cs"], rel=1e-12)
    _check_png(png, min_w=300)
    r = run(["kinship-matrix", *models, "--base", f["base"], "--json", "--no-progress"])
    d = json.loads(r.stdout)
    assert {"cs", "pcc", "ed", "mean_pairwise"} <= set(d) and len(d["pcc"]) == 3


def test_merge_cal_accepts_both_list_formats(kin_family):
    f = kin_family
    spaced = run([f["a"], f["c"], f["base"], "cs pcc ed"], cli=merge_cal)
    commas = run([f["a"], f["c"], f["base"], "cs,pcc,ed"], cli=merge_cal)
    assert spaced.exit_code == commas.exit_code == 0, spaced.output
    assert spaced.stdout == commas.stdout
    lines = spaced.stdout.splitlines()
    assert len(lines) == 3 and all(MK_LINE.match(x) for x in lines), lines
    assert lines[0].startswith("cs: Model Kinship based on Cosine Similarity: ")
    assert [x.split(":")[0] for x in lines] == ["cs", "pcc", "ed"]
    want = kinship(f["a"], f["c"], base=f["base"], absolute_cosine=True)
    assert float(MK_LINE.match(lines[1]).group(2)) == want["pcc"]
    split = run([f["a"], f["c"], f["base"], "ed", "--split-calculation"], cli=merge_cal)
    assert re.fullmatch(r"ed: Model Kinship based on Euclidean Distance \(weighted average\): "
                        r"\d+\.\d{4}\n", split.stdout)


def test_merge_cal_prints_lines_as_modelkinship_in_the_order_asked(kin_family):
    """Current ModelKinship echoes `{key}: {sentence}` per metric, in the order given."""
    f = kin_family
    r = run([f["a"], f["c"], f["base"], "ed pcc cs"], cli=merge_cal)
    want = kinship(f["a"], f["c"], base=f["base"], absolute_cosine=True)
    assert r.stdout.splitlines() == [
        f"ed: Model Kinship based on Euclidean Distance: {want['ed']!r}",
        f"pcc: Model Kinship based on Pearson Correlation Coefficient: {want['pcc']!r}",
        f"cs: Model Kinship based on Cosine Similarity: {want['cs']!r}"]


def test_merge_cal_reports_absolute_cosine(kin_family, tmp_path):
    """Two anti-related models: ModelKinship's |cos| by default, signed on request."""
    from kinmerge.io.reader import ModelReader
    from safetensors.torch import save_file
    import shutil

    base, a = ModelReader(kin_family["base"]), ModelReader(kin_family["a"])
    (tmp_path / "m").mkdir()
    save_file({n: 2 * base.get(n) - a.get(n) for n in base.names()},
              tmp_path / "m" / "model.safetensors")
    shutil.copy(f"{kin_family['a']}/config.json", tmp_path / "m")
    r = run([kin_family["a"], tmp_path / "m", kin_family["base"], "cs"], cli=merge_cal)
    assert float(MK_LINE.match(r.stdout.strip()).group(2)) == pytest.approx(1.0, abs=1e-6)
    r = run([kin_family["a"], tmp_path / "m", kin_family["base"], "cs", "--signed-cosine"],
            cli=merge_cal)
    assert float(MK_LINE.match(r.stdout.strip()).group(2)) == pytest.approx(-1.0, abs=1e-6)


def test_cli_errors_are_one_message_exit_2(kin_family):
    f = kin_family
    r = run(["kinship", f["a"], f["b"], "--no-progress"])
    assert r.exit_code == 2 and "no base model given" in r.output
    assert "Traceback" not in r.output
    r = run([f["a"], f["b"], f["base"], "cs foo"], cli=merge_cal)
    assert r.exit_code == 2 and "unknown kinship metric: foo" in r.output
    r = run(["kinship", f["a"], "--base", f["base"], "--no-progress"])
    assert r.exit_code == 2 and "kinship needs two models" in r.output
