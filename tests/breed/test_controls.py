"""The controls of kinship guidance, end to end on the breeding fixtures: `partner: random`,
`select: random` and `stall: fill`; the anytime trace and the kinship cost every run reports.

Each expected choice is recomputed here from the run's database by a plain rewrite of the
rule (the seeded draws with Python's `random`, the rankings with `sorted`)."""
import itertools
import random

import pytest

from breed_standins import flat_delta
from kinmerge.search.breed import breed
from kinmerge.search.breed.state import BreedState

M = 4  # C(3, 2) + 1 for k = 3
BUDGET = 13  # 4 pool models, 6 pool pairs in generation 1: leaves room for later generations


def run(config, fitness, kin, out, **over):
    cfg = config(budget={"evaluations": BUDGET, "generations": None}, **over)
    f = fitness() if callable(fitness) and not isinstance(fitness, DeltaSize) else fitness
    return breed(cfg, out, fitness=f, kinship_fn=kin, plots=False).summary


class DeltaSize:
    """Fitness = the mean square of the model's delta from the base. A merge shrinks the
    delta, so no child enters the top-k and greedy stalls after generation 1."""

    def __init__(self, base: str):
        self.base = base

    def __call__(self, candidate, split: str = "search") -> dict[str, float]:
        x = flat_delta(candidate.path, self.base)
        return {"size": float((x * x).mean())}


def rows_and_fit(out):
    st = BreedState(out / "breed.db")
    try:
        rows = st.models()
        return rows, {n: st.evaluation(n)[0] for n in rows if st.evaluation(n)}
    finally:
        st.close()


def ancestors(rows, n):
    ps = set(rows[n].parents)
    return ps.union(*(ancestors(rows, p) for p in ps)) if ps else set()


def top_after(rows, fit, gen, k=3):
    """The top-k of the models made before generation `gen + 1` (ties: the older)."""
    done = [n for n in rows if rows[n].generation <= gen and n in fit]
    return sorted(done, key=lambda n: (-fit[n], rows[n].seq))[:k]


@pytest.fixture(scope="module")
def runs(config, fitness, kin, pool, tmp_path_factory):
    root = tmp_path_factory.mktemp("controls")
    spec = {"greedy": {"explore": False}, "explore": {"explore": True},
            "random_partner": {"explore": True, "partner": "random"},
            "random_pairs": {"select": "random"},
            "greedy_full": {"explore": False, "stall": "fill"}}
    out = {name: (run(config, fitness, kin, root / name, **over), root / name)
           for name, over in spec.items()}
    for name, over in (("greedy_stalls", {"explore": False}),  # a fitness where greedy stalls
                       ("greedy_full_stalls", {"explore": False, "stall": "fill"})):
        out[name] = (run(config, DeltaSize(pool["base"]), kin, root / name, **over), root / name)
    return out


def test_random_partner_is_explorations_schedule_with_a_seeded_random_partner(runs):
    s, out = runs["random_partner"]
    rows, fit = rows_and_fit(out)
    explored = [g for g in s.generations if g.explored]
    assert explored, "the fixture run must explore at least once"
    for g in explored:
        best, partner = g.explored
        top = top_after(rows, fit, g.generation - 1)
        assert best == top[0]
        planned = {frozenset(p) for p in itertools.combinations(top, 2)}
        merged = {frozenset(rows[n].parents) for n in rows
                  if rows[n].parents and rows[n].generation < g.generation}
        cands = sorted((n for n in rows if n in fit and rows[n].generation < g.generation
                        and n != best and n not in ancestors(rows, best)
                        and frozenset((best, n)) not in merged | planned),
                       key=lambda n: rows[n].seq)
        rng = random.Random(f"breed:partner:0:{g.generation}")
        assert partner == rng.choice(cands)
    # the partner was drawn, not measured: no kinship served a decision
    assert s.kinship_for_selection == 0 and s.partner == "random"


def test_exploration_counts_the_kinships_its_partner_choice_read(runs):
    s, out = runs["explore"]
    rows, fit = rows_and_fit(out)
    consulted = set()
    for g in (g for g in s.generations if g.explored):
        best = g.explored[0]
        top = top_after(rows, fit, g.generation - 1)
        planned = {frozenset(p) for p in itertools.combinations(top, 2)}
        merged = {frozenset(rows[n].parents) for n in rows
                  if rows[n].parents and rows[n].generation < g.generation}
        consulted |= {frozenset((best, n)) for n in rows
                      if n in fit and rows[n].generation < g.generation and n != best
                      and n not in ancestors(rows, best)
                      and frozenset((best, n)) not in merged | planned}
    assert s.kinship_for_selection == len(consulted) > 0
    assert s.kinship_measured >= s.kinship_for_selection
    assert runs["greedy"][0].kinship_for_selection == 0  # greedy never reads kinship
    assert runs["greedy"][0].kinship_measured > 0  # but records its parents' and top-k's


def test_random_pairs_draws_predicteds_width_from_predicteds_candidates(runs):
    s, out = runs["random_pairs"]
    rows, fit = rows_and_fit(out)
    pool = [n for n in rows if rows[n].origin == "pool"]
    gen1 = [frozenset(rows[n].parents) for n in rows if rows[n].generation == 1]
    drawn = random.Random("breed:pairs:0:1").sample(list(itertools.combinations(pool, 2)), M)
    assert gen1 == [frozenset(p) for p in drawn]
    for g in (g for g in s.generations if g.generation > 1):
        before = [n for n in rows if rows[n].generation < g.generation and n in fit]
        top = set(top_after(rows, fit, g.generation - 1))
        merged = {frozenset(rows[n].parents) for n in before if rows[n].parents}
        cands = [(a, b) for a, b in itertools.combinations(before, 2)
                 if frozenset((a, b)) not in merged and {a, b} & top
                 and a not in ancestors(rows, b) and b not in ancestors(rows, a)]
        want = random.Random(f"breed:pairs:0:{g.generation}").sample(cands, min(M, len(cands)))
        got = [frozenset(m.parents) for m in g.merged]
        assert got == [frozenset(p) for p in want][:len(got)]
        assert all(m.origin == "random" for m in g.merged)
    assert s.kinship_for_selection == 0 and s.select == "random"


def test_greedy_full_spends_the_budget_greedy_leaves(runs):
    greedy, full = runs["greedy_stalls"][0], runs["greedy_full_stalls"][0]
    assert greedy.stop_reason == "top-k unchanged" and greedy.evaluations == 4 + 6
    assert full.stop_reason == "budget" and full.evaluations == BUDGET
    # up to greedy's stop the two are the same run
    assert full.trace[:greedy.evaluations] == greedy.trace
    assert [g.to_dict() for g in full.generations[:len(greedy.generations)]] == \
        [g.to_dict() for g in greedy.generations]
    rows, fit = rows_and_fit(runs["greedy_full_stalls"][1])
    fills = [g for g in full.generations if any(m.origin == "fill" for m in g.merged)]
    assert fills
    for g in fills:  # the untried pairs of best mean parent fitness, M at most
        before = [n for n in rows if rows[n].generation < g.generation and n in fit]
        merged = {frozenset(rows[n].parents) for n in before if rows[n].parents}
        order = {n: i for i, n in enumerate(before)}
        cands = sorted((p for p in itertools.combinations(before, 2)
                        if frozenset(p) not in merged),
                       key=lambda p: (-(fit[p[0]] + fit[p[1]]), order[p[0]], order[p[1]]))
        got = [frozenset(m.parents) for m in g.merged]
        assert got == [frozenset(p) for p in cands[:M]][:len(got)]
    assert full.kinship_for_selection == 0 and full.stall == "fill"
    # where greedy never stalls, fill changes nothing
    assert runs["greedy_full"][0].trace == runs["greedy"][0].trace


def test_every_run_records_its_anytime_trace(runs):
    for name, (s, out) in runs.items():
        rows, fit = rows_and_fit(out)
        scored = [fit[n] for n in rows if n in fit]  # creation order
        want = [max(scored[: i + 1]) for i in range(len(scored))]
        assert list(s.trace) == want, name
        assert len(s.trace) == s.evaluations and s.trace[-1] == s.best_score, name


def test_random_choices_replay_on_resume(config, fitness, kin, runs, tmp_path):
    """A random_pairs run stopped early and resumed with the full budget makes the same
    models, from the same parents, as the run that had the budget from the start."""
    out = tmp_path / "resumed"
    cfg = config(select="random", budget={"evaluations": 8, "generations": None})
    breed(cfg, out, fitness=fitness(), kinship_fn=kin, plots=False)
    s = run(config, fitness, kin, out, select="random")
    whole, whole_out = runs["random_pairs"]
    assert s.trace == whole.trace and s.evaluations == whole.evaluations
    a, b = rows_and_fit(out)[0], rows_and_fit(whole_out)[0]
    assert [(n, r.parents) for n, r in a.items()] == [(n, r.parents) for n, r in b.items()]


def test_controls_on_the_command_line(pool, tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from breed_standins import cli_breed_yml
    from kinmerge.cli import main

    f = cli_breed_yml(pool, tmp_path, monkeypatch, k=2, explore=False)
    r = CliRunner().invoke(main, ["breed", str(f), "--out", str(tmp_path / "full"), "--stall",
                                  "fill", "--budget", "9", "--no-report"], terminal_width=200)
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "full" / "summary.json").read_text())
    # delta_size: no child enters the pool's top-k, so plain greedy stops at 3 + 3; fill
    # spends the rest of the budget
    assert s["stall"] == "fill" and s["evaluations"] == 9 and s["stop_reason"] == "budget"
    assert [m["origin"] for m in s["generations"][2]["merged"]] == ["fill"] * 2
    # the default kinship threshold (0.9) is a decision: it read the top-k's one pair, the
    # same pool pair every generation
    assert len(s["trace"]) == 9 and s["kinship_for_selection"] == 1
    r = CliRunner().invoke(main, ["breed", str(f), "--out", str(tmp_path / "bad"), "--partner",
                                  "random", "--no-report"], terminal_width=200)
    assert r.exit_code == 2 and "partner chooses exploration's partner" in r.output
    assert not (tmp_path / "bad" / "breed.db").exists()
