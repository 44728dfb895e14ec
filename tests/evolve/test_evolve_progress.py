"""evolve() logs one line per CMA-ES generation, in generation order: with two workers
finishing trials out of order, and when a resumed run completes a generation the first run
had begun."""
from __future__ import annotations

import logging
import re

from kinmerge.search.evolve import evolve

LINE = re.compile(r"^ps gen (\d+): best [0-9.]+  mean [0-9.]+  [0-9.]+ trials/s$")


def generations(caplog) -> list[int]:
    lines = [r.getMessage() for r in caplog.records if r.name == "kinmerge.search.evolve.search"
             and " gen " in r.getMessage()]
    assert all(LINE.match(m) for m in lines), lines
    return [int(LINE.match(m).group(1)) for m in lines]


def test_generation_lines_in_order_with_two_workers_and_across_a_resume(ps_config, tmp_path,
                                                                        caplog):
    caplog.set_level(logging.INFO, logger="kinmerge.search.evolve.search")
    # 2 genes: population 6; trial 0 (x0) is generation 0, then 6 trials a generation
    evolve(ps_config(budget={"trials": 19}), tmp_path / "par", workers=2)
    assert generations(caplog) == [0, 1, 2, 3]

    caplog.clear()
    evolve(ps_config(budget={"trials": 10}), tmp_path / "run", workers=2)  # stops in gen 2
    assert generations(caplog) == [0, 1, 2]  # the begun generation is reported at the end
    caplog.clear()
    evolve(ps_config(budget={"trials": 26}), tmp_path / "run", workers=2, resume=True)
    # gen 2, which the first run began, completes here before gen 3 (it came after gen 3
    # when the resumed run counted only its own trials of it); 26 = 1 + 4 x 6 + 1: a
    # generation is asked whole, so the last trial begins gen 5, reported at the end
    assert generations(caplog) == [2, 3, 4, 5]
