"""breed() logs one line per generation, in generation order, and each child's lines
(merged, evaluated) in plan order under the generation that made it, even when two workers
finish a generation's jobs out of order."""
from __future__ import annotations

import logging
import re

from breed_standins import SlowFirst, mean_target
from kinmerge.search.breed import breed

GEN = re.compile(r"^generation (\d+): best ")
MERGED = re.compile(r"^merged (\S+) \+ (\S+) -> (g(\d+)-\d\d)$")
EVALUATED = re.compile(r"^evaluated (\S+): [0-9.]+$")


def test_lines_in_generation_and_plan_order_with_two_workers(config, pool, kin, tmp_path,
                                                             caplog):
    caplog.set_level(logging.INFO, logger="kinmerge.search.breed")
    s = breed(config(explore=True), tmp_path / "run", fitness=SlowFirst(
        pool["base"], mean_target(pool)), kinship_fn=kin, plots=False,
        workers=2).summary.to_dict()
    lines = [r.getMessage() for r in caplog.records if r.name == "kinmerge.search.breed.loop"]
    gens = [int(m.group(1)) for m in map(GEN.match, lines) if m]
    assert gens == list(range(len(s["generations"]))) and len(gens) >= 3

    current, children, last_merged = -1, [], None
    for line in lines:
        if m := GEN.match(line):
            current = int(m.group(1))
        elif m := MERGED.match(line):
            assert int(m.group(4)) == current + 1, line  # under the generation it belongs to
            last_merged = m.group(3)
        elif m := EVALUATED.match(line):
            name = m.group(1)
            if name.startswith("g"):
                assert int(name[1:name.index("-")]) == current + 1, line
                assert last_merged == name, line  # right after its own "merged" line
                children.append(name)
            else:
                assert current == -1, line  # pool models are scored before generation 0
    assert children == sorted(children)  # g1-01 first though it finished last
    assert len(children) == s["evaluations"] - len(pool["ft"])
