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
    assert "<h2>Held-out scores</h2><table><tr><th>model</th><th>rev</th><th>sort</th>" in html
    assert "…/zoo/v1-0123456789ab" in html and "/root/.cache" not in html
    assert "<details class='cell'><summary>merge_method: ties" in html
    assert "<figcaption>evolve/fitness.png</figcaption>" in html
    assert "#render-check{display:none}" in html
    assert "{&quot;" not in html  # no JSON blob left on the page


def test_evolve_report_leads_with_the_verdict_and_the_winner(evolve_run):
    html = render(evolve_run)
    head = html.index("id='headline'")
    assert head < html.index("<h2>The winner: best.yml</h2>") < html.index("<h2>Summary</h2>")
    assert ("Evolved winner (ps after 40 trials): held-out 0.538 beats the best hand recipe "
            "task_arithmetic-w0.75 (0.198, best of 3 tried); search fitness 0.612.") in html
    assert "<pre class='recipe'>merge_method: dare_ties" in html
    assert "<summary>best.yml</summary>" not in html  # shown, not folded at the bottom
    # the baselines read best first, whatever order summary.json keeps
    order = [html.index(f"<th>{n}</th>") for n in ("task_arithmetic-w0.75", "dare_ties-w1-d0.5",
                                                   "ties-w1-d0.5")]
    assert order == sorted(order)
    # history.csv: four significant digits, per-task scores on one line, genomes rounded
    assert "0.53770000000001" not in html and "<td>0.5377</td>" in html
    assert "<td>add 0, rev 0.855, sort 0.76</td>" in html
    assert "<td>0.1235, 0.9877</td>" in html


def test_a_losing_winner_is_said_plainly(evolve_run):
    s = json.loads((evolve_run / "summary.json").read_text())
    s.update(best_heldout=0.1, winner_beats_best_baseline=False)
    (evolve_run / "summary.json").write_text(json.dumps(s))
    html = render(evolve_run)
    assert "class='headline bad'" in html and "held-out 0.100 does NOT beat" in html


def test_demo_report_shows_kinship_as_a_matrix_and_the_family_tree_last(tmp_path):
    run = tmp_path / "demo"
    run.mkdir()
    png = bytes.fromhex("89504e470d0a1a0a")
    for name in ("family.png", "kinship.png", "scores.png"):
        (run / name).write_bytes(png)
    summary = {"scores": {"rev": {"rev": 1.0, "sort": 0.065, "mean": 0.5325},
                          "sort": {"rev": 0.0, "sort": 0.995, "mean": 0.4975},
                          "ta": {"rev": 0.94, "sort": 0.87, "mean": 0.905}},
               "parents": ["rev", "sort"], "best_merge": "ta",
               "evolve": {"heldout_mean": 0.945, "best_hand_merge": "ta",
                          "best_hand_mean": 0.905, "beats_best_hand_merge": True},
               "kinship": {"models": ["/x/zoo/rev", "/x/zoo/sort"], "base": "/x/zoo/base",
                           "cs": [[1.0, 0.0281234567891234], [0.0281234567891234, 1.0]]}}
    (run / "summary.json").write_text(json.dumps(summary))
    html = render(run)
    assert ("Best merge ta (held-out mean 0.905) beats both parents (rev 0.532, sort 0.497); "
            "the evolved recipe (0.945) beats the best hand merge ta (0.905).") in html
    assert "<tr><td>rev</td><td>1</td><td>0.02812</td></tr>" in html
    assert "0.0281234567891234" not in html and "[[" not in html
    assert html.index("<h2>Held-out scores</h2>") < html.index("<h2>Figures</h2>")
    captions = [html.index(f"<figcaption>{n}</figcaption>")
                for n in ("kinship.png", "scores.png", "family.png")]
    assert captions == sorted(captions)  # the family tree (search fitness) comes last
