"""`select: predicted` end to end on the breeding fixtures: the pairs it merges, what it
records, its stop rule, resume, and the command line.

The expected choices are recomputed here from the run's database by a second, plain
implementation of the rule (normal equations instead of predict.py's stacked lstsq)."""
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kinmerge import lineage
from kinmerge.search.breed import breed
from kinmerge.search.breed.state import BreedState
from kinmerge.cli import main

M = 4  # C(3, 2) + 1 for k = 3


@pytest.fixture(scope="module", autouse=True)
def fit_without_spread():
    """The fixture pool's kinships span ~0.05, below predict.MIN_SPREAD: these tests are of
    the rule's mechanics once the fit stands, so the spread rule is off here (it has its own
    unit test in test_predict.py)."""
    from kinmerge.search.breed import predict
    saved, predict.MIN_SPREAD = predict.MIN_SPREAD, 0.0
    yield
    predict.MIN_SPREAD = saved


def run(config, fitness, kin, out):
    return breed(config, out, fitness=fitness, kinship_fn=kin, plots=False).summary.to_dict()


@pytest.fixture(scope="module")
def predicted_run(config, fitness, kin, tmp_path_factory):
    out = tmp_path_factory.mktemp("predicted") / "run"
    return run(config(select="predicted"), fitness(), kin, out), out


def database(out: Path):
    st = BreedState(out / "breed.db")
    try:
        rows = st.models()
        fit = {n: st.evaluation(n)[0] for n in rows}
        kin = {frozenset((a, b)): st.kinship(a, b, "pcc") for a, b in
               itertools.combinations(rows, 2) if st.kinship(a, b, "pcc") is not None}
        return rows, fit, kin
    finally:
        st.close()


def expected(gen: int, top: list[str], rows, fit, kin):
    """The rule, written out plainly: (pairs in merge order, skipped count, coefficients)."""
    before = [n for n in rows if rows[n].generation < gen]  # creation order
    kids = [n for n in before if rows[n].parents]
    x = np.array([[1.0, kin[frozenset(rows[n].parents)],
                   abs(fit[rows[n].parents[0]] - fit[rows[n].parents[1]])] for n in kids])
    y = np.array([fit[n] - (fit[rows[n].parents[0]] + fit[rows[n].parents[1]]) / 2
                  for n in kids])
    w = np.linalg.solve(x.T @ x + 1e-6 * np.eye(3), x.T @ y)

    def ancestors(n):
        ps = set(rows[n].parents)
        return ps.union(*(ancestors(p) for p in ps)) if ps else set()

    merged = {frozenset(rows[n].parents) for n in kids}
    cands = [(a, b) for a, b in itertools.combinations(before, 2)
             if frozenset((a, b)) not in merged and {a, b} & set(top)
             and a not in ancestors(b) and b not in ancestors(a)]
    pred = {c: (fit[c[0]] + fit[c[1]]) / 2 + w @ [1.0, kin[frozenset(c)],
                                                  abs(fit[c[0]] - fit[c[1]])] for c in cands}
    kept = sorted((c for c in cands if pred[c] > max(fit[c[0]], fit[c[1]])),
                  key=lambda c: (-pred[c], rows[c[0]].seq, rows[c[1]].seq))
    return kept[:M], len(cands) - len(kept), w


def test_generation_one_merges_the_m_least_related_pool_pairs(predicted_run):
    s, out = predicted_run
    rows, fit, kin = database(out)
    pool = [n for n in rows if not rows[n].parents]
    g1 = s["generations"][1]
    assert s["select"] == "predicted" and g1["skipped"] == 0 and g1["explored"] is None
    by_kin = sorted(itertools.combinations(pool, 2), key=lambda c: kin[frozenset(c)])
    assert [frozenset(m["parents"]) for m in g1["merged"]] == [frozenset(c) for c in by_kin[:M]]
    # the prior: gain = -kinship; rank by mean(f) - kinship (here the same pairs: the pool's
    # fitness differs by 1e-4, its kinship by 1e-2)
    by_prior = sorted(itertools.combinations(pool, 2),
                      key=lambda c: -((fit[c[0]] + fit[c[1]]) / 2 - kin[frozenset(c)]))
    assert [frozenset(c) for c in by_prior[:M]] == [frozenset(m["parents"]) for m in g1["merged"]]
    for m in g1["merged"]:
        assert m["origin"] == "predicted" and m["predicted_by"] == "prior"
        assert m["predicted_gain"] == -kin[frozenset(m["parents"])]


def test_later_generations_merge_the_top_predictions(predicted_run):
    s, out = predicted_run
    rows, fit, kin = database(out)
    gens = s["generations"]
    assert len(gens) >= 3  # at least two generations under the fit
    for g in gens[2:]:
        top = gens[g["generation"] - 1]["top_k"]
        pairs, skipped, w = expected(g["generation"], top, rows, fit, kin)
        assert [frozenset(m["parents"]) for m in g["merged"]] == [frozenset(p) for p in pairs]
        assert g["skipped"] == skipped
        for m in g["merged"]:
            a, b = m["parents"]
            assert fit[a] >= fit[b]  # the fitter parent first
            x = [1.0, kin[frozenset((a, b))], abs(fit[a] - fit[b])]
            assert m["predicted_by"] == "fit"
            assert m["predicted_gain"] == pytest.approx(float(w @ x), abs=1e-9)


def test_it_stops_when_no_pair_is_predicted_to_gain(predicted_run):
    s, out = predicted_run
    rows, fit, kin = database(out)
    assert s["stop_reason"] == "no pair predicted to gain"
    last = s["generations"][-1]
    pairs, skipped, _ = expected(last["generation"] + 1, last["top_k"], rows, fit, kin)
    assert pairs == [] and skipped > 0


def test_predicted_gains_are_in_each_childs_lineage(predicted_run):
    s, out = predicted_run
    _, fit, _ = database(out)
    merges = [m for g in s["generations"] for m in g["merged"]]
    assert len(merges) == s["evaluations"] - 4
    for m in merges:
        rec = lineage.read(out / "models" / m["child"]).model
        assert (rec.predicted_gain, rec.predicted_by) == (m["predicted_gain"],
                                                          m["predicted_by"])
        # ... beside the actual gain, for a benchmark to correlate
        a, b = m["parents"]
        assert rec.merge_gain == pytest.approx(fit[m["child"]] - (fit[a] + fit[b]) / 2)
    assert json.loads((out / "summary.json").read_text()) == s


def test_a_killed_predicted_run_resumes_to_the_same_children_and_summary(
        predicted_run, config, fitness, kin, tmp_path):
    whole, whole_out = predicted_run
    first = fitness(fail_after=10)  # the pool, generation 1, two children of generation 2
    with pytest.raises(RuntimeError, match="simulated kill"):
        run(config(select="predicted"), first, kin, tmp_path / "run")
    assert len(first.calls) == 10
    second = fitness()
    s = run(config(select="predicted"), second, kin, tmp_path / "run")
    assert not set(first.calls) & set(second.calls), "an evaluation was redone"
    assert s["generations"] == whole["generations"]
    assert (s["stop_reason"], s["evaluations"]) == (whole["stop_reason"], whole["evaluations"])
    for m in (m for g in s["generations"] for m in g["merged"]):
        a = lineage.read(tmp_path / "run" / "models" / m["child"]).model
        b = lineage.read(whole_out / "models" / m["child"]).model
        assert (a.predicted_gain, a.merge_gain) == (b.predicted_gain, b.merge_gain)


def test_select_on_the_command_line(pool, tmp_path, monkeypatch):
    from breed_standins import cli_breed_yml
    f = cli_breed_yml(pool, tmp_path, monkeypatch, k=2)
    r = CliRunner().invoke(main, ["breed", str(f), "--out", str(tmp_path / "run"), "--select",
                                  "predicted", "--no-report"], terminal_width=200)
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    # k = 2: C(2, 2) + 1 = 2 of the pool's 3 pairs in generation 1
    assert s["select"] == "predicted" and s["evaluations"] == 5
    assert [m["origin"] for m in s["generations"][1]["merged"]] == ["predicted"] * 2
    # delta_size: merging averages deltas away, so no child enters the pool's top-k
    assert "stopped: top-k unchanged" in r.output and "gen 1: best" in r.output
    # the same folder with the default select is another run
    r = CliRunner().invoke(main, ["breed", str(f), "--out", str(tmp_path / "run")])
    assert r.exit_code == 2 and "different configuration" in r.output
