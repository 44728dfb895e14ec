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
