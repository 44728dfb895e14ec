"""The report reads as tables: nested scores as tables, rounded floats, paths shortened,
long recipes folded, the render check hidden, a demo's evolve/breed figures included."""
import json

from kinmerge.report.html import render


def test_demo_like_summary_renders_as_tables(tmp_path):
    run = tmp_path / "demo"
    (run / "evolve").mkdir(parents=True)
    (run / "evolve" / "summary.json").write_text("{}")
    png = bytes.fromhex("89504e470d0a1a0a")  # the PNG signature is enough to embed
    (run / "evolve" / "fitness.png").write_bytes(png)
    summary = {"scores": {"rev": {"rev": 1.0, "sort": 0.005, "mean": 0.31499999999999995},
                          "sort": {"rev": 0.0, "sort": 0.99, "mean": 0.495}},
               "zoo": "/root/.cache/kinmerge/zoo/v1-0123456789ab",
               "evolve": {"heldout_mean": 0.955, "best_hand_merge": "task_arithmetic_0.8"}}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "history.csv").write_text("trial,recipe\n0,\"" + "merge_method: ties\\n" * 20 + "\"\n")
    html = render(run)
    assert "0.31499999999999995" not in html and "<td>0.315</td>" in html
    assert "<th></th><th>rev</th><th>sort</th><th>mean</th>" in html
    assert "…/zoo/v1-0123456789ab" in html and "/root/.cache" not in html
    assert "<details class='cell'><summary>merge_method: ties" in html
    assert "<figcaption>evolve/fitness.png</figcaption>" in html
    assert "#render-check{display:none}" in html
    assert "{&quot;" not in html  # no JSON blob left on the page
