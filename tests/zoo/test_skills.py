"""Zoos over other skills than the default four: the catalogue, configs naming skills."""
from __future__ import annotations

import dataclasses
import json
import random

import pytest

from kinmerge.errors import KinmergeError
from kinmerge.zoo import ZooConfig, build_zoo
from kinmerge.zoo import tasks as T
from kinmerge.zoo.family import Expert


def test_shift_and_upper_answers():
    rng = random.Random(3)
    p, a = T.CATALOGUE["shift"][0](rng)
    assert p[0] == "H" and p[-1] == "=" and 8 <= len(a) <= 9
    assert all((ord(y) - ord(x)) % 26 == 1 for x, y in zip(p[1:-1], a, strict=True))
    assert T.make_shift(1, 1)(_fixed("z"))[1] == "a"
    p, a = T.CATALOGUE["upper"][0](rng)
    assert p[0] == "U" and a == p[1:-1].upper()
    short = [T.CATALOGUE["upper"][1](rng)[1] for _ in range(200)]
    assert {len(x) for x in short} == set(range(2, 8))


def _fixed(letter: str) -> random.Random:
    class R(random.Random):
        def choice(self, seq):  # noqa: D401 - a word of one fixed letter
            return letter
    return R(0)


def test_default_config_keeps_its_digest_and_json():
    """Adding `skills`/`pretrain` must not move the shipped zoo's digest."""
    cfg = ZooConfig()
    assert "skills" not in cfg.to_dict() and "pretrain" not in cfg.to_dict()
    assert cfg.digest(0) == "3f76ec2f33de723d"  # measured before the fields existed
    assert cfg.skill_names() == ("add", "rev", "sort", "copy")


def test_skills_round_trip_and_change_the_digest():
    cfg = dataclasses.replace(ZooConfig.tiny(), skills=("rev", "shift"),
                              pretrain=("rev", "shift", "copy"))
    back = ZooConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.digest(0) == cfg.digest(0) != ZooConfig.tiny().digest(0)


def test_a_zoo_of_other_skills(tmp_path):
    cfg = dataclasses.replace(
        ZooConfig.tiny(), skills=("rev", "shift"), pretrain=("rev", "shift", "copy"),
        experts=(Expert("shift", "shift", seed=1), Expert("rev", "rev", seed=1)),
        parents=("shift", "rev"))
    root = build_zoo(tmp_path / "z", cfg, seed=0)
    manifest = json.loads((root / "zoo.json").read_text())
    assert list(manifest["skills"]) == ["rev", "shift"]
    assert manifest["models"]["shift"]["skill"] == "shift"
    rows = [json.loads(x) for x in (root / manifest["skills"]["shift"]["heldout"]).open()]
    assert len(rows) == cfg.eval_examples and all(r["prompt"][0] == "H" for r in rows)


def test_unknown_skill_is_one_clear_error(tmp_path):
    cfg = dataclasses.replace(ZooConfig.tiny(), skills=("rev", "juggle"))
    with pytest.raises(KinmergeError, match="(?s)unknown zoo skill.*juggle.*choose among"):
        build_zoo(tmp_path / "z", cfg, seed=0)
    assert not (tmp_path / "z").exists()


def test_presets():
    kin = ZooConfig.preset("kin")
    assert kin.skills == ("sort", "shift", "upper")
    assert [(e.name, e.skill, e.seed) for e in kin.experts] == [
        ("sort1", "sort", 1), ("sort2", "sort", 2), ("shift1", "shift", 1),
        ("shift2", "shift", 2), ("upper1", "upper", 1), ("upper2", "upper", 2)]
    assert all(e.replay == 0.5 for e in kin.experts) and kin.expert.lr == 2e-4
    assert ZooConfig.preset("default") == ZooConfig()
    assert ZooConfig.preset("tiny") == ZooConfig.tiny()
    with pytest.raises(KinmergeError, match="(?s)unknown zoo preset 'huge'.*default, kin, mix, tiny"):
        ZooConfig.preset("huge")


def test_composition_problems():
    from kinmerge.zoo.properties import composition_problems
    good = {"all": {"a+b+c": {"x": 0.8, "y": 0.9, "z": 0.85}},
            "pairs": {"a+b": {"x": 0.9, "y": 0.9, "z": 0.4}},
            "relatives": {"a+a2": {"x": 0.5, "y": 0.1, "z": 0.1}},
            "experts": {"a": {"x": 0.9, "y": 0.1, "z": 0.1}, "a2": {"x": 0.8, "y": 0.1, "z": 0.1}},
            "skills": {"a": "x", "a2": "x", "b": "y", "c": "z"}}
    assert composition_problems(good) == []
    bad = {**good, "all": {"a+b+c": {"x": 0.6, "y": 0.7, "z": 0.7}},
           "relatives": {"a+a2": {"x": 0.95, "y": 0.2, "z": 0.1}}}
    got = composition_problems(bad)
    assert got == ["the merge a+b+c keeps too little of x (0.600) (needs >= 0.7)",
                   "the merge of all skills (0.667) does not beat the best two-skill merge "
                   "a+b (0.733)",
                   "same-skill experts a+a2 gain by merging (0.417 against 0.367 alone): "
                   "near relatives would not stall greedy merging"]


def test_cli_preset_option(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from kinmerge.cli import main
    monkeypatch.setenv("KINMERGE_CACHE", str(tmp_path / "cache"))
    r = CliRunner().invoke(main, ["zoo", "build", str(tmp_path / "out"), "--preset", "tiny",
                                  "--seed", "3"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "out" / "zoo.json").read_text())["seed"] == 3
    r = CliRunner().invoke(main, ["zoo", "build", str(tmp_path / "o2"), "--preset", "huge"])
    assert r.exit_code == 2 and "'huge' is not one of 'default', 'kin', 'mix', 'tiny'" in r.output


@pytest.mark.slow
def test_the_kin_preset_has_its_properties():
    """Trains the kin zoo (5-8 minutes on 2 cores, cached) and checks every property the
    breeding experiments rely on; measured on seeds 0, 1 and 2 when the preset was made."""
    from kinmerge.zoo import zoo
    from kinmerge.zoo.properties import check_zoo
    assert check_zoo(zoo(ZooConfig.kin(), seed=0)) == []
