"""The end of `kinmerge evolve`: the winner and the best hand recipe in words."""
from dataclasses import replace
from pathlib import Path

from kinmerge.cli.evolve import summary_lines
from kinmerge.search.evolve.summary import EvolveSummary


def test_summary_lines_name_the_winner_and_the_best_hand_recipe():
    s = EvolveSummary.from_dict(
        {"mode": "ps", "trials": 72, "best_search": 0.61, "timing": {}, "best_heldout": 0.5767,
         "baselines_heldout": {"task_arithmetic-w0.75": 0.3467, "ties-w1-d0.5": 0.085},
         "best_baseline": "task_arithmetic-w0.75", "winner_beats_best_baseline": True})
    assert summary_lines(s, Path("runs/evo/best.yml")) == [
        "ps: 72 trials; winner runs/evo/best.yml (search fitness 0.6100)",
        "held-out: winner 0.5767",
        "held-out: best hand recipe task_arithmetic-w0.75 0.3467 (2 tried): the winner beats it"]
    lost = summary_lines(replace(s, winner_beats_best_baseline=False), Path("b.yml"))
    assert lost[-1].endswith("the winner does NOT beat it")


def test_summary_lines_without_a_heldout_split():
    s = EvolveSummary(mode="dfs", trials=6, best_search=0.5, timing={})
    assert summary_lines(s, Path("b.yml"))[-1] == (
        "no held-out split in the fitness: nothing to compare on unseen prompts")
