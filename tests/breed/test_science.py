"""The breeding experiment's statistics (results/science.py) on hand-made runs."""
from __future__ import annotations

import csv
import json
import math

import pytest

from tools.results import science as S
from tools.results.science_render import render


def test_evals_to_best_and_stall_generation():
    assert S.evals_to_best([0.2, 0.5, 0.4, 0.5, 0.1]) == 2
    assert S.evals_to_best([0.9]) == 1
    assert S.evals_to_reach([0.2, 0.5, 0.4], 0.45) == 2
    assert S.evals_to_reach([0.2, 0.5], 0.6) is None
    assert S.evals_to_reach([0.2, 0.903333], 0.9033333333333333) == 2  # rounded history
    assert S.stall_generation([0.3, 0.5, 0.5, 0.6]) == 2
    assert S.stall_generation([0.3, 0.5, 0.7]) is None
    assert S.stall_generation([0.3, 0.2]) == 1


def test_pearson_by_hand_and_bootstrap_interval():
    x, y = [1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 3.0]
    # means 2.5/2.5; sxy = (-1.5)(-.5)+(-.5)(-1.5)+(.5)(1.5)+(1.5)(.5) = 3; sxx = syy = 5
    assert S.pearson(x, y) == pytest.approx(0.6)
    c = S.correlate([float(i) for i in range(30)], [2.0 * i + 1 for i in range(30)])
    assert c["r"] == pytest.approx(1.0) and c["lo"] == pytest.approx(1.0) and c["n"] == 30
    noisy = S.correlate(x * 5, [v + (i % 3) for i, v in enumerate(y * 5)], seed=1)
    assert noisy["lo"] <= noisy["r"] <= noisy["hi"]
    assert noisy == S.correlate(x * 5, [v + (i % 3) for i, v in enumerate(y * 5)], seed=1)
    assert math.isnan(S.pearson([1.0, 1.0], [2.0, 3.0]))


def _run(seed, strategy, best, evals_to_best, children=()):
    trace = [0.0] * (evals_to_best - 1) + [best]
    return {"seed": seed, "strategy": strategy, "best": best, "evals_to_best": evals_to_best,
            "children": list(children), "trace": trace}


def test_compare_counts_wins_and_spread():
    runs = [_run(0, "greedy", 0.5, 10), _run(0, "explore", 0.7, 14),
            _run(1, "greedy", 0.6, 12), _run(1, "explore", 0.6, 12),
            _run(2, "greedy", 0.6, 11), _run(2, "explore", 0.5, 9)]
    c = S.compare(runs, "explore", "greedy")
    assert (c["wins"], c["ties"], c["losses"]) == (1, 1, 1)
    assert c["diff"] == pytest.approx([0.2, 0.0, -0.1])
    assert c["mean_diff"] == pytest.approx(0.1 / 3)
    assert c["sd_diff"] == pytest.approx(math.sqrt(((0.2 - 0.1 / 3) ** 2 + (0.1 / 3) ** 2
                                                    + (-0.1 - 0.1 / 3) ** 2) / 2))
    assert c["evals_diff"] == [4, 0, -2]
    # seed 0: greedy's 0.5 is reached by explore only at its best (14), greedy at 10
    assert c["evals_to_common"] == [(14, 10), (12, 12), (9, 11)]


def test_unique_children_counts_a_pool_pair_once_per_seed():
    pool_child = {"paths": ["/z/a", "/z/b"], "gain": 0.1}
    later = {"paths": ["/r/greedy/models/g1-01", "/z/c"], "gain": 0.0}
    runs = [_run(0, "greedy", 0, 0, [pool_child, later]),
            _run(0, "explore", 0, 0, [pool_child, {**later, "paths": ["/r/explore/models/g1-01",
                                                                     "/z/c"]}]),
            _run(1, "greedy", 0, 0, [pool_child])]
    got = S.unique_children(runs)
    assert len(got) == 4 and [c["seed"] for c in got] == [0, 0, 0, 1]


def test_read_run_from_summary_and_history(tmp_path):
    gens = [{"generation": 0, "best": 0.4, "top_k_kinship": 0.1, "evaluations": 3},
            {"generation": 1, "best": 0.6, "top_k_kinship": 0.3, "evaluations": 6},
            {"generation": 2, "best": 0.6, "top_k_kinship": 0.8, "evaluations": 8}]
    (tmp_path / "summary.json").write_text(json.dumps(
        {"best_score": 0.6, "best_model": "g1-02", "best_path": "p", "evaluations": 8,
         "stop_reason": "budget", "generations": gens}))
    rows = [("a", "", 0.4, ""), ("b", "", 0.3, ""), ("g1-01", "a + b", 0.5, 0.15),
            ("g1-02", "a + g1-01", 0.6, 0.15)]
    with (tmp_path / "history.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, ["name", "generation", "origin", "parents", "fitness",
                               "merge_gain", "path"])
        w.writeheader()
        for n, par, fit, gain in rows:
            w.writerow({"name": n, "generation": 1 if par else 0, "origin": "top-k" if par
                        else "pool", "parents": par, "fitness": fit, "merge_gain": gain,
                        "path": f"/x/{n}"})
    r = S.read_run(tmp_path)
    assert r["evals_to_best"] == 4 and r["stall_generation"] == 2
    assert [c["paths"] for c in r["children"]] == [["/x/a", "/x/b"], ["/x/a", "/x/g1-01"]]
    assert r["children"][1]["gain"] == pytest.approx(0.15)


def test_render_has_the_three_tables_and_the_paper_value():
    runs = [{**_run(s, st, b, e), "evaluations": 20, "stall_generation": 2 if st == "greedy"
             else None, "stop_reason": "budget",
             "generations": [{"generation": 0, "best": 0.3, "top_k_kinship": 0.1},
                             {"generation": 1, "best": b, "top_k_kinship": 0.4}]}
            for s in (0, 1) for st, b, e in (("greedy", 0.5, 9), ("explore", 0.6, 12))]
    corr = {m: {"gain": {"r": -0.5, "lo": -0.7, "hi": -0.2, "n": 12},
                "abs_gain": {"r": -0.3, "lo": -0.6, "hi": 0.1, "n": 12}} for m in S.METRICS}
    data = {"runs": runs, "compare": {"explore_vs_greedy": S.compare(runs, "explore", "greedy")},
            "correlation": corr, "meta": {"machine": "M (2 cores)", "torch": "2.13.0",
                                          "preset": "kin", "seeds": [0, 1], "budget": 20,
                                          "date": "2026-11-30", "load": 1.0}}
    text = render(data)
    assert ("| 0 | exploration (paper) | 0.600 |  | 12 | 20 | never | 0.40 -> 0.40 | budget |"
            in text)
    assert ("| exploration (paper) | greedy top-k | 2 / 0 / 0 | +0.100 (0.000) | 12 vs 9, 12 vs 9 |"
            in text)
    assert "| pcc | -0.50 [-0.70, -0.20] | -0.30 [-0.60, +0.10] | 12 |" in text
    assert "reports r = -0.59" in text and "seeds 0, 1" in text


def test_results_page_block_is_the_generators_output():
    """Edit the measured tables by hand, or change the renderer without rerunning
    `benchmarks/breed_science.py --write-docs`: fails."""
    from pathlib import Path

    from tools.results.render import block_text
    root = Path(__file__).parents[2]
    data = json.loads((root / "docs" / "breed-science.json").read_text())
    page = (root / "docs" / "results.md").read_text()
    assert block_text(page, "breed-science") == render(data), \
        "docs/results.md results:breed-science differs: run benchmarks/breed_science.py " \
        "--write-docs"
    for name in ("best_per_generation", "topk_kinship", "kinship_vs_gain"):
        assert f"](figures/{name}.png)" in page
        assert (root / "docs" / "figures" / f"{name}.png").stat().st_size > 10_000
    assert len(data["meta"]["seeds"]) >= 3 and len(data["runs"]) == 3 * len(data["meta"]["seeds"])
