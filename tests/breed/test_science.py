"""The breeding experiment's statistics (results/science.py) on hand-made runs."""
from __future__ import annotations

import csv
import hashlib
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
    # a whole summary, as breed writes it: read_run reads it through read_summary
    gens = [{"generation": g, "best": b, "top_k_kinship": k, "evaluations": e,
             "top_k": ["a"], "best_model": "a", "merged": [], "explored": None}
            for g, b, k, e in ((0, 0.4, 0.1, 3), (1, 0.6, 0.3, 6), (2, 0.6, 0.8, 8))]
    (tmp_path / "summary.json").write_text(json.dumps(
        {"explore": False, "k": 2, "metric": "pcc", "budget": 8, "best_score": 0.6,
         "best_model": "g1-02", "best_path": "p", "evaluations": 8,
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


def test_holm_steps_down_and_stops_at_the_first_failure():
    from tools.results.science_render import holm
    assert holm([0.02, 0.04]) == [True, True]  # 0.02 < 0.025, then 0.04 < 0.05
    assert holm([0.04, 0.02]) == [True, True]
    assert holm([0.03, 0.04]) == [False, False]  # the smaller fails 0.025: both stand
    assert holm([0.001, 0.06]) == [True, False]
    assert holm([0.03, 0.001]) == [True, True]  # after the smaller, the larger meets 0.05
    assert holm([0.025, 0.03]) == [False, False]  # p = alpha/m is not below it


def _science_data(h1: list[float], h2: list[float]) -> dict:
    """Runs of 10 seeds (seed 5's zoo failing) whose held-out differences in H1 and H2 are
    `h1` and `h2` (explore and predicted at 0.5 + d, their controls at 0.5)."""
    runs = []
    for i, s in enumerate(range(10)):
        for st, d in (("explore", h1[i]), ("random_partner", 0.0), ("predicted", h2[i]),
                      ("random_pairs", 0.0)):
            runs.append({**_run(s, st, 0.5 + d, 9), "best_heldout": 0.5 + d,
                         "evaluations": 20, "stop_reason": "budget",
                         "kinship_for_selection": 16 if st in ("explore", "predicted") else 0,
                         "kinship_measured": 30, "generations": []})
    zoos = [{"seed": s, "ok": s != 5, "problems": ["the base scores 0.6"] if s == 5 else []}
            for s in range(10)]
    passing = [z["seed"] for z in zoos if z["ok"]]
    compare = {f"{a}_vs_{b}": S.compare(runs, a, b, passing)
               for a, b in (("explore", "random_partner"), ("predicted", "random_pairs"))}
    compare_all = {f"{a}_vs_{b}": S.compare(runs, a, b)
                   for a, b in (("explore", "random_partner"), ("predicted", "random_pairs"))}
    return {"runs": runs, "zoos": zoos, "compare": compare, "compare_all": compare_all,
            "anytime": {"explore_vs_random_partner": S.anytime(
                runs, "explore", "random_partner", 20, passing)},
            "meta": {"machine": "M (2 cores)", "torch": "2.13.0", "preset": "kin",
                     "operator_name": "ta", "seeds": list(range(10)), "budget": 20,
                     "date": "2026-12-06", "load": 1.0, "first_passing": 9, "beyond": [10]}}


def test_render_gives_the_preregistered_verdict():
    # H1: explore ahead on all 9 passing seeds (exact Wilcoxon p = 2/512); H2: mixed
    data = _science_data([0.1] * 10, [0.1, -0.1, 0.2, -0.2, 0.05, 9.0, -0.05, 0.0, -0.1, 0.0])
    text = render(data)
    assert text.startswith("Zoos: 9 of 10 pass their check (failed, recorded and left out of "
                           "the comparisons: seeds 5; what each lacks is in science.md).")
    assert ("| H1: exploration (paper) beats exploration, random partner | 9 (9) | +0.100 | "
            "0.004 | yes | **yes** |") in text
    assert "| H2: predicted gain beats random pairs | 9 (7) | -0.011 |" in text
    assert text.count("**no**") == 1  # H2, mixed and a negative mean
    # the sensitivity analysis: every bred seed, the failed zoo's too (H2's +9.0 on seed 5)
    assert "| H1 | 10 | 10 / 0 / 0 | +0.100 | [+0.100, +0.100] | 0.002 |" in text
    assert "| H2 | 10 | 4 / 2 / 4 | +0.890 |" in text
    # the paired table of every comparison, the anytime table and the cost per strategy
    assert "| exploration (paper) | exploration, random partner | 9 | 9 / 0 / 0 | +0.100 |" \
        in text
    assert "| exploration (paper) | exploration, random partner | +0.100 [+0.100, +0.100] |" \
        in text  # each run has its best at its 9th evaluation
    assert "| exploration (paper) | 20.0 [20, 20] | 9.0 [9, 9] | 16.0 [16, 16] | 30.0 [30, " \
        "30] |" in text
    assert "left out: 10" in text and "operator `ta`" in text
    # H1 alone significant but with a negative mean: rejected, not supported
    worse = render(_science_data([-0.1] * 10, [0.0] * 10))
    assert "| H1: exploration (paper) beats exploration, random partner | 9 (9) | -0.100 | " \
        "0.004 | yes | **no** |" in worse


@pytest.mark.parametrize("block,figs", [
    ("breed-science", ["anytime", "anytime_diff", "kinship_vs_gain", "best_per_generation",
                       "topk_kinship"]),
    ("breed-science-ties", ["breed-science-ties-anytime", "breed-science-ties-anytime_diff"])])
def test_results_page_block_is_the_generators_output(block, figs):
    """Edit the measured tables by hand, or change the renderer without rerunning
    `benchmarks/breed_science_combine.py --write-docs`: fails."""
    from pathlib import Path

    from tools.results.render import block_text
    root = Path(__file__).parents[2]
    data = json.loads((root / "docs" / f"{block}.json").read_text())
    page = (root / "docs" / "results.md").read_text()
    assert block_text(page, block) == render(data), \
        f"docs/results.md results:{block} differs: run benchmarks/breed_science_combine.py " \
        f"--block {block} --write-docs"
    for name in figs:
        assert f"](figures/{name}.png)" in page
        assert (root / "docs" / "figures" / f"{name}.png").stat().st_size > 10_000
    assert "children" not in data and not any("children" in r for r in data["runs"])
    # every passing seed bred all six ways (a failed zoo's runs may be skipped)
    passing = [z["seed"] for z in data["zoos"] if z["ok"]]
    assert len(passing) >= 3 and all(
        sum(r["seed"] == s for r in data["runs"]) == 6 for s in passing)


def test_anytime_compares_best_so_far_at_every_budget_carrying_a_stopped_run():
    runs = [{"seed": 0, "strategy": "explore", "trace": [0.1, 0.3, 0.3, 0.5]},
            {"seed": 0, "strategy": "greedy", "trace": [0.1, 0.4]},  # stopped after 2
            {"seed": 1, "strategy": "explore", "trace": [0.2, 0.2, 0.2, 0.2]},
            {"seed": 1, "strategy": "greedy", "trace": [0.1, 0.1, 0.3, 0.3]}]
    assert S.best_at(runs[1], 4) == 0.4 and S.best_at(runs[0], 2) == 0.3
    a = S.anytime(runs, "explore", "greedy", 4)
    assert a["per_seed"] == {"0": pytest.approx([0.0, -0.1, -0.1, 0.1]),
                             "1": pytest.approx([0.1, 0.1, -0.1, -0.1])}
    assert a["mean"] == pytest.approx([0.05, 0.0, -0.1, 0.0])
    assert a["lo"] == pytest.approx([0.0, -0.1, -0.1, -0.1])
    assert a["hi"] == pytest.approx([0.1, 0.1, -0.1, 0.1])
    assert a["wins"] == [1, 1, 0, 1] and a["losses"] == [0, 1, 2, 1]
    assert S.anytime(runs, "explore", "greedy", 4, seeds=[1])["mean"] == \
        pytest.approx([0.1, 0.1, -0.1, -0.1])
    c = S.curve(runs, "greedy", 3)
    assert c["mean"] == pytest.approx([0.1, 0.25, 0.35]) and c["lo"] == [0.1, 0.1, 0.3]


def test_compare_adds_the_preregistered_heldout_statistics():
    runs = []
    for seed, (a, b) in enumerate([(0.9, 0.8), (0.85, 0.86), (0.7, 0.6), (0.95, 0.9),
                                   (0.8, 0.8), (0.91, 0.9)]):
        runs += [{**_run(seed, "explore", a, 5), "best_heldout": a},
                 {**_run(seed, "random_partner", b, 5), "best_heldout": b}]
    c = S.compare(runs, "explore", "random_partner")
    h = c["heldout"]
    assert h["n"] == 6 and h["diff"] == pytest.approx([0.1, -0.01, 0.1, 0.05, 0.0, 0.01])
    # signs: 4 wins, 1 loss, 1 tie: p = 2 (1 + 5) / 32
    assert (h["sign"]["wins"], h["sign"]["losses"], h["sign"]["ties"]) == (4, 1, 1)
    assert h["sign"]["p"] == pytest.approx(12 / 32)
    assert h["t"]["mean"] == pytest.approx(0.25 / 6)
    # the primary comparison may be restricted to the seeds whose zoo passed its check
    assert S.compare(runs, "explore", "random_partner", seeds=[0, 2])["heldout"]["diff"] == \
        pytest.approx([0.1, 0.1])
    assert "heldout" not in S.compare([_run(0, "explore", 1, 1), _run(0, "greedy", 1, 1)],
                                      "explore", "greedy")


def test_unique_children_by_content_hash_with_the_strategies_that_made_them():
    same = {"paths": ["/r/greedy/models/g1-01", "/z/c"], "sha256": "aa", "gain": 0.1}
    runs = [_run(0, "greedy", 0, 1, [same, {**same, "sha256": "bb"}]),
            _run(0, "explore", 0, 1, [{**same, "paths": ["/r/explore/models/g2-05", "/z/c"]}]),
            _run(1, "greedy", 0, 1, [same])]
    got = S.unique_children(runs)
    assert [(c["seed"], c["sha256"], c["strategies"]) for c in got] == [
        (0, "aa", ["greedy", "explore"]), (0, "bb", ["greedy"]), (1, "aa", ["greedy"])]


def test_add_hashes_and_skill_sets(tmp_path):
    for name, blob in (("a", b"1"), ("b", b"2"), ("c", b"1")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(blob)
    runs = [{"children": [{"path": str(tmp_path / "c"), "paths": [str(tmp_path / "a"),
                                                                   str(tmp_path / "b")]}]}]
    S.add_hashes(runs)
    c = runs[0]["children"][0]
    assert c["sha256"] == S.model_sha256(tmp_path / "a") == hashlib.sha256(b"1").hexdigest()
    assert c["parent_sha256"] == [hashlib.sha256(b"1").hexdigest(),
                                  hashlib.sha256(b"2").hexdigest()]
    rows = [{"name": "s1", "path": "/z/s1", "parents": ""},
            {"name": "h1", "path": "/z/h1", "parents": ""},
            {"name": "u1", "path": "/z/u1", "parents": ""},
            {"name": "g1-01", "path": "/r/g1-01", "parents": "s1 + h1"},
            {"name": "g2-01", "path": "/r/g2-01", "parents": "g1-01 + u1"}]
    sets = S.skill_sets(rows, {"/z/s1": "sort", "/z/h1": "shift", "/z/u1": "upper"})
    assert sets["g1-01"] == {"sort", "shift"} and sets["g2-01"] == {"sort", "shift", "upper"}


def _child(seed, pcc, gain, related, pool_pair, parents):
    return {"seed": seed, "kinship": {"pcc": pcc, "cs": pcc, "ed": 1 - pcc}, "gain": gain,
            "related": related, "pool_pair": pool_pair, "paths": list(parents),
            "parent_sha256": list(parents)}


def test_honest_correlation_separates_the_groups_a_pooled_r_mixes():
    """Related pairs: high kinship, losses; unrelated: low kinship, gains. Pooled, kinship
    looks strongly negative; within each group the relation is the opposite sign or the
    same perfect line, and the related indicator alone explains most of the pooled r."""
    kids = []
    for seed in (0, 1):
        kids += [_child(seed, 0.8, -0.1, True, True, ("a", "b")),
                 _child(seed, 0.9, -0.2, True, False, ("a", "c")),
                 _child(seed, 0.1, 0.1, False, True, ("b", "d")),
                 _child(seed, 0.15, 0.2, False, False, ("c", "d")),
                 _child(seed, 0.2, 0.3, False, True, ("a", "d"))]
    h = S.honest_correlation(kids, perms=500, boot=200)["pcc"]["gain"]
    assert h["all"]["n"] == 10 and h["all"]["r"] < -0.8
    assert h["related"]["r"] == pytest.approx(-1.0) and h["related"]["n"] == 4
    assert h["unrelated"]["r"] == pytest.approx(1.0) and h["unrelated"]["n"] == 6
    assert h["census"]["n"] == 6 and h["later"]["n"] == 4
    assert h["all"]["per_seed"]["each"] == pytest.approx({"0": h["all"]["r"],
                                                          "1": h["all"]["r"]})
    ind = S.honest_correlation(kids, perms=500, boot=200)["related_indicator"]["gain"]
    assert ind["r"] == pytest.approx(S.pearson([1.0, 1, 0, 0, 0] * 2,
                                               [-0.1, -0.2, 0.1, 0.2, 0.3] * 2))
    assert ind["r"] < -0.8


def test_scores_equal_but_for_rounding_are_ties():
    """The pilot's random_pairs best 0.8933333333333334 against greedy's
    0.8933333333333332: the same 268/300, summed in another order. A tie, not a win."""
    runs = [{**_run(0, "random_pairs", 0.8933333333333334, 9),
             "best_heldout": 0.8783333333333333},
            {**_run(0, "greedy", 0.8933333333333332, 8), "best_heldout": 0.855}]
    c = S.compare(runs, "random_pairs", "greedy")
    assert (c["wins"], c["ties"], c["losses"]) == (0, 1, 0) and c["diff"] == [0.0]
    assert c["search"]["sign"]["ties"] == 1
    assert c["heldout"]["diff"] == [pytest.approx(0.023333333)]
    a = S.anytime(runs, "random_pairs", "greedy", 9)
    assert a["wins"][-1] == 0 and a["per_seed"]["0"][-1] == 0.0
    assert str(S.diff(0.3, 0.3 + 1e-12)) == "0.0"  # no -0.0 either
