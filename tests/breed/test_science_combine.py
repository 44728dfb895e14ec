"""benchmarks/breed_science_combine.py: seeds bred by several processes joined into the one
analysis the pre-registration describes (the first N passing zoos in seed order)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def combiner():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("breed_science_combine",
                                                  ROOT / "benchmarks" /
                                                  "breed_science_combine.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


META = {"budget": 40, "preset": "kin", "operator": {"merge_method": "task_arithmetic"},
        "operator_name": "ta"}


def part(verdicts: dict[int, bool], **meta) -> dict:
    return {"meta": {**META, **meta},
            "zoos": [{"seed": s, "ok": ok, "digest": f"d{s}"} for s, ok in verdicts.items()],
            "runs": [{"seed": s, "strategy": st} for s in verdicts for st in ("a", "b")]}


def test_the_pick_keeps_seeds_in_order_up_to_the_nth_passing_zoo():
    C = combiner()
    a = part({100: True, 101: False, 102: True})
    b = part({103: False, 104: True, 105: True, 106: True})
    zoos, runs, beyond = C.pick([b, a], 3)  # the parts' order does not matter
    assert [z["seed"] for z in zoos] == [100, 101, 102, 103, 104]  # failed ones kept, flagged
    assert [(r["seed"], r["strategy"]) for r in runs] == [
        (s, st) for s in (100, 101, 102, 103, 104) for st in ("a", "b")]
    assert beyond == [105, 106]
    # fewer passing than asked: every seed, and the count says so
    zoos, _, beyond = C.pick([a, b], 10)
    assert len(zoos) == 7 and beyond == []


def test_the_pick_refuses_a_gap_it_needs_and_parts_of_other_experiments():
    C = combiner()
    a, b = part({100: True, 101: False}), part({103: True, 104: True})
    with pytest.raises(C.CombineError, match=r"seed 102 is missing .*\(1 of 3 passing"):
        C.pick([a, b], 3)
    assert [z["seed"] for z in C.pick([a, b], 1)[0]] == [100]  # the gap lies beyond the pick
    with pytest.raises(C.CombineError, match="operator_name is"):
        C.pick([a, part({102: True}, operator_name="ties")], 3)
    skipped = part({102: False, 103: True})  # --skip-failed: a failed zoo left unbred
    skipped["runs"] = [r for r in skipped["runs"] if r["seed"] != 102]
    zoos, runs, _ = C.pick([a, skipped], 3)
    assert [z["seed"] for z in zoos] == [100, 101, 102, 103] and len(runs) == 6
    unbred = part({102: True})
    unbred["runs"] = []
    with pytest.raises(C.CombineError, match="not all bred with the same strategies"):
        C.pick([a, unbred], 3)
    twice = part({101: True})
    twice["zoos"][0]["digest"] = "other"
    with pytest.raises(C.CombineError, match="seed 101 has two different zoos"):
        C.pick([a, twice], 3)


def test_two_parts_give_the_analysis_of_one_run(tmp_path, monkeypatch):
    """Seeds 0 and 1 bred apart and combined = both bred by one run (on the tiny zoo, whose
    untrained zoos fail their check: all seeds are kept)."""
    monkeypatch.setenv("KINMERGE_CACHE", str(tmp_path / "cache"))
    C = combiner()
    args = ["--preset", "tiny", "--budget", "6", "--strategies", "greedy", "random_pairs"]
    for seeds, out in ((["0"], "a"), (["1"], "b"), (["0", "1"], "one")):
        assert C.B.main(["--seeds", *seeds, *args, "--out", str(tmp_path / out)]) == 0
    assert C.main(["--parts", str(tmp_path / "b"), str(tmp_path / "a"), "--out",
                   str(tmp_path / "joined")]) == 0
    one = json.loads((tmp_path / "one" / "science.json").read_text())
    # the same runs, bred into other folders: paths into them are compared as if in one
    text = (tmp_path / "joined" / "science.json").read_text()
    for d in ("a", "b"):
        text = text.replace(f'"{tmp_path / d}/', f'"{tmp_path / "one"}/')
    joined = json.loads(text)
    for key in ("children", "compare", "compare_all", "anytime", "curves",
                "honest_correlation"):
        assert joined[key] == one[key], key
    drop = ("seconds", "build_seconds")  # wall times (the second run found the zoos built)
    assert [{k: v for k, v in z.items() if k not in drop} for z in joined["zoos"]] == \
        [{k: v for k, v in z.items() if k not in drop} for z in one["zoos"]]
    assert [{k: v for k, v in r.items() if k not in drop} for r in joined["runs"]] == \
        [{k: v for k, v in r.items() if k not in drop} for r in one["runs"]]
    assert joined["meta"]["seeds"] == [0, 1] and joined["meta"]["beyond"] == []
    assert [p["dir"] for p in joined["meta"]["parts"]] == [str(tmp_path / "b"),
                                                           str(tmp_path / "a")]
    assert (tmp_path / "joined" / "science.md").read_text().startswith("# Breeding science")
    assert C.main(["--parts", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2


@pytest.mark.parametrize("text", ["{", "{}", '{"meta": {}, "zoos": [], "runs": []}', "[1]",
                                  '{"meta": 1, "zoos": [{"seed": 1}], "runs": []}'])
def test_a_broken_part_is_one_error_and_writes_nothing(tmp_path, capsys, text):
    C = combiner()
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "science.json").write_text(text)
    assert C.main(["--parts", str(tmp_path / "p"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'p' / 'science.json'}: ")
    assert not (tmp_path / "out").exists()


def test_first_passing_must_be_positive(tmp_path):
    with pytest.raises(SystemExit) as e:
        combiner().main(["--parts", str(tmp_path), "--first-passing", "0", "--out",
                         str(tmp_path / "out")])
    assert e.value.code == 2 and not (tmp_path / "out").exists()


def test_the_docs_copy_leaves_out_the_child_records():
    """docs/BLOCK.json is science.json without the per-child records (most of its size;
    the figures and correlations are computed before the copy)."""
    B = combiner().B
    data = {"meta": {"seeds": [1]}, "children": [{"sha256": "x"}], "compare": {"a": 1},
            "runs": [{"seed": 1, "children": [{"path": "p"}], "trace": [0.5]}]}
    assert B.docs_copy(data) == {"meta": {"seeds": [1]}, "compare": {"a": 1},
                                 "runs": [{"seed": 1, "trace": [0.5]}]}
    assert data["runs"][0]["children"] and data["children"]  # the full data is untouched
