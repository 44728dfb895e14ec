"""The trained zoo: deterministic bytes, loadable by transformers, tasks and manifest, cache."""
from __future__ import annotations

import json

import pytest

import torch
from click.testing import CliRunner

from kinmerge.zoo import ZooConfig, build_zoo, zoo
from kinmerge.zoo import tasks as T
from kinmerge.zoo.tokenizer import BOS_ID, encode

MODELS = ["base", "add", "add_seed2", "rev"]


def test_build_twice_gives_identical_bytes(tiny_zoo, tmp_path):
    again = build_zoo(tmp_path / "b", ZooConfig.tiny(), seed=0)
    for name in MODELS:
        a = (tiny_zoo / name / "model.safetensors").read_bytes()
        assert a == (again / name / "model.safetensors").read_bytes(), name
    for f in ["tasks/add/heldout.jsonl", "tasks/rev/search.jsonl", "tasks/text.txt", "zoo.json"]:
        assert (tiny_zoo / f).read_bytes() == (again / f).read_bytes(), f


def test_other_seed_gives_other_weights(tiny_zoo, tmp_path):
    other = build_zoo(tmp_path / "c", ZooConfig.tiny(), seed=1)
    assert (tiny_zoo / "add/model.safetensors").read_bytes() != \
        (other / "add/model.safetensors").read_bytes()


def test_models_load_with_auto_classes(tiny_zoo):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    for name in MODELS:
        model = AutoModelForCausalLM.from_pretrained(tiny_zoo / name)
        tok = AutoTokenizer.from_pretrained(tiny_zoo / name)
        assert type(model).__name__ == "LlamaForCausalLM"
        assert not model.config.tie_word_embeddings
        ids = tok("A07+45=").input_ids
        assert ids == [BOS_ID] + encode("A07+45=")
        assert tok.decode(ids[1:]) == "A07+45="
        with torch.no_grad():
            assert model(input_ids=torch.tensor([ids])).logits.shape == (1, 8, len(tok))


def test_experts_share_the_base_and_differ_from_it(tiny_zoo):
    from safetensors.torch import load_file
    base = load_file(tiny_zoo / "base/model.safetensors")
    add = load_file(tiny_zoo / "add/model.safetensors")
    assert base.keys() == add.keys() and "lm_head.weight" in base
    assert any(not torch.equal(base[k], add[k]) for k in base)


def test_manifest_and_task_files(tiny_zoo):
    m = json.loads((tiny_zoo / "zoo.json").read_text())
    assert m["parents"] == ["add", "rev"]
    assert {k: v["skill"] for k, v in m["models"].items()} == {
        "base": None, "add": "add", "add_seed2": "add", "rev": "rev"}
    n = ZooConfig.tiny().eval_examples
    for skill, files in m["skills"].items():
        rows = {s: [json.loads(x) for x in (tiny_zoo / files[s]).read_text().splitlines()]
                for s in ("search", "heldout")}
        assert all(len(r) == n for r in rows.values())
        # the two splits share no prompt
        assert not {r["prompt"] for r in rows["search"]} & {r["prompt"] for r in rows["heldout"]}
        choices = [json.loads(x) for x in (tiny_zoo / files["choices"]).read_text().splitlines()]
        assert all(c["choices"][c["answer"]] == h["answer"]
                   for c, h in zip(choices, rows["heldout"]))


def test_task_answers_are_right():
    import random
    rng = random.Random(0)
    p, a = T.make_add(2)(rng)
    x, y = int(p[1:3]), int(p[4:6])
    assert int(a[::-1]) == x + y and len(a) == 3
    p, a = T.SKILLS["add"](rng)
    assert int(a[::-1]) == int(p[1:4]) + int(p[5:8]) and len(a) == 4
    p, a = T.SKILLS["rev"](rng)
    assert a == p[1:-1][::-1] and 8 <= len(a) <= 9
    p, a = T.SKILLS["sort"](rng)
    assert a == "".join(sorted(p[1:-1]))


def test_training_never_sees_evaluation_prompts():
    import random
    gen = T.make_add(2)  # 10^4 prompts: without the rejection, 3000 draws hit ~60 reserved
    reserved = frozenset(gen(random.Random(1))[0] for _ in range(200))
    mix = T.Mixture((gen,), reserved=reserved)
    rng = random.Random(0)
    assert not {mix.sample(rng)[0] for _ in range(3000)} & reserved


def test_cache_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("KINMERGE_CACHE", str(tmp_path / "cache"))
    first = zoo(ZooConfig.tiny(), seed=0)
    assert first.parent == tmp_path / "cache" / "zoo"
    stamp = (first / "add/model.safetensors").stat().st_mtime_ns
    assert zoo(ZooConfig.tiny(), seed=0) == first
    assert (first / "add/model.safetensors").stat().st_mtime_ns == stamp
    assert zoo(ZooConfig.tiny(), seed=1) != first


def test_cli_zoo_build(tmp_path, monkeypatch):
    from kinmerge.cli import main
    monkeypatch.setenv("KINMERGE_CACHE", str(tmp_path / "cache"))
    r = CliRunner().invoke(main, ["zoo", "build", str(tmp_path / "out"), "--tiny"])
    assert r.exit_code == 0, r.output
    assert "add_seed2" in r.output
    assert (tmp_path / "out/rev/model.safetensors").is_file()


def test_manifest_is_a_typed_record(tiny_zoo, tmp_path):
    import json

    import pytest

    from kinmerge.errors import KinmergeError
    from kinmerge.zoo.manifest import ZooManifest, ZooModel, read_manifest

    m = read_manifest(tiny_zoo)
    assert isinstance(m, ZooManifest) and isinstance(m.models["add"], ZooModel)
    assert m.experts == ("add", "add_seed2", "rev") and m.models["base"].skill is None
    assert m.parents == ("add", "rev")
    with pytest.warns(DeprecationWarning, match=r"read ZooManifest\.parents or to_dict\(\)"):
        assert m["parents"] == ["add", "rev"]  # the old mapping reads, for one release
    assert m.to_dict() == json.loads((tiny_zoo / "zoo.json").read_text())
    with pytest.raises(KinmergeError, match="holds no readable zoo manifest"):
        read_manifest(tmp_path)


def test_the_manifest_reader_refuses_what_is_not_a_manifest(tmp_path, monkeypatch):
    """zoo.json has one reader; every way a file can fail to be a manifest is one clear error
    (the control: a real manifest reads, see test_manifest_is_a_typed_record), and is_zoo
    says no rather than raising."""
    import json

    import pytest

    from kinmerge.errors import KinmergeError
    from kinmerge.zoo import manifest as M
    from kinmerge.zoo.cache import is_zoo

    good = {"format": 2, "seed": 0, "digest": "d", "config": {}, "parents": ["a", "b"],
            "models": {"base": {"path": "base", "skill": None}}, "skills": {}, "text": "t"}
    bad = {"models as a list": {**good, "models": []}, "a key missing": {"format": 2},
           "not an object": [1, 2], "a model without path": {**good, "models": {"a": {}}}}
    for why, data in bad.items():
        (tmp_path / "zoo.json").write_text(json.dumps(data))
        with pytest.raises(KinmergeError, match="holds no readable zoo manifest"):
            M.read_manifest(tmp_path)
        assert not is_zoo(tmp_path), why
    (tmp_path / "zoo.json").write_text(json.dumps(good))
    assert M.read_manifest(tmp_path).models["base"].skill is None and is_zoo(tmp_path, "d")
    monkeypatch.setattr(M, "MAX_MANIFEST", 10)
    with pytest.raises(KinmergeError, match=r"bytes, more than a manifest holds"):
        M.read_manifest(tmp_path)


def test_build_trains_on_the_thread_policy_and_restores_the_callers(tmp_path, monkeypatch):
    """Training runs on one thread (kinmerge.threads' `train` policy), whatever torch's count
    was; `threads=` overrides it; the caller's count is back afterwards."""
    from kinmerge.zoo import family

    for var in ("KINMERGE_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    seen: list[int] = []
    real = family.train

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(family, "train", spy)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        build_zoo(tmp_path / "one", ZooConfig.tiny(), seed=0)
        assert seen == [1, 1, 1, 1]  # the base and three experts
        assert torch.get_num_threads() == 2
        seen.clear()
        build_zoo(tmp_path / "three", ZooConfig.tiny(), seed=0, threads=3)
        assert seen == [3, 3, 3, 3] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_build_bytes_do_not_depend_on_the_callers_threads(tiny_zoo, tmp_path):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        again = build_zoo(tmp_path / "b", ZooConfig.tiny(), seed=0)
    finally:
        torch.set_num_threads(before)
    for name in MODELS:
        assert (tiny_zoo / name / "model.safetensors").read_bytes() == \
            (again / name / "model.safetensors").read_bytes(), name


def test_thread_policy_leaves_digests_and_the_shipped_zoo_alone():
    """The thread count is not part of a zoo's identity: the cache keys of the default and
    kin zoos are what they were before the policy, and the default config is still the
    shipped artifact's (so `zoo()` unpacks it rather than training)."""
    from kinmerge.zoo import artifact
    from kinmerge.zoo.cache import uses_shipped

    assert ZooConfig().digest(0) == "3f76ec2f33de723d"
    assert ZooConfig.kin().digest(0) == "800931b7dff1d2e9"
    assert ZooConfig.kin().digest(100) == "93e45d745587f88e"
    assert uses_shipped(ZooConfig(), 0)
    assert artifact.shipped_digest() == "v1-6d769861f218"


def test_cli_zoo_build_rejects_a_bad_thread_count(tmp_path, monkeypatch):
    from kinmerge.cli import main
    monkeypatch.setenv("KINMERGE_CACHE", str(tmp_path / "cache"))
    r = CliRunner().invoke(main, ["zoo", "build", str(tmp_path / "out"), "--tiny",
                                  "--threads", "0"])
    assert r.exit_code == 2 and "not a thread count: 0" in r.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_mix_preset_experts_train_on_overlapping_mixtures():
    cfg = ZooConfig.mix()
    assert [(e.name, e.skill, e.mix, e.seed) for e in cfg.experts] == [
        ("sort_shift", "sort", (("sort", 3), ("shift", 1)), 1),
        ("sort_upper", "sort", (("sort", 3), ("upper", 1)), 2),
        ("shift_sort", "shift", (("shift", 3), ("sort", 1)), 3),
        ("shift_upper", "shift", (("shift", 3), ("upper", 1)), 4),
        ("upper_sort", "upper", (("upper", 3), ("sort", 1)), 5),
        ("upper_shift", "upper", (("upper", 3), ("shift", 1)), 6)]
    assert cfg.experts[0].skills() == ("sort", "sort", "sort", "shift")
    assert (cfg.skills, cfg.pretrain, cfg.expert) == (ZooConfig.kin().skills,
                                                      ZooConfig.kin().pretrain,
                                                      ZooConfig.kin().expert)
    # the mix is part of the config's identity; the kin preset's has none and keeps its digest
    assert ZooConfig.from_dict(cfg.to_dict()) == cfg
    assert "mix" not in ZooConfig.kin().to_dict()["experts"][0]
    assert cfg.digest(0) != ZooConfig.kin().digest(0)
    assert ZooConfig.preset("mix") == cfg


def test_a_mixed_expert_builds_and_trains_on_both_skills(tmp_path, monkeypatch):
    """A tiny zoo whose expert mixes add (3 parts) and rev (1): its training mixture draws
    both, about 3:1, and the zoo is labelled and scored by the main skill."""
    import dataclasses
    import random

    from kinmerge.zoo import family
    from kinmerge.zoo.family import Expert
    from kinmerge.zoo.properties import is_kin, is_mix

    seen = []
    real = family.train

    def spy(model, data, *args, **kwargs):
        seen.append(data)
        return real(model, data, *args, **kwargs)

    monkeypatch.setattr(family, "train", spy)
    cfg = dataclasses.replace(ZooConfig.tiny(), experts=(
        Expert("add_rev", "add", seed=1, mix=(("add", 3), ("rev", 1))),
        Expert("rev", "rev", seed=1)))
    root = build_zoo(tmp_path / "z", cfg, seed=0)
    manifest = json.loads((root / "zoo.json").read_text())
    assert manifest["models"]["add_rev"]["skill"] == "add"
    assert manifest["config"]["experts"][0]["mix"] == [["add", 3], ["rev", 1]]
    assert "mix" not in manifest["config"]["experts"][1]
    mixed = dataclasses.replace(seen[1], replay=0.0)  # seen[0] is the base's
    rng = random.Random(0)
    tags = [mixed.sample(rng)[0][0] for _ in range(4000)]
    assert tags.count("A") / len(tags) == pytest.approx(0.75, abs=0.03)
    assert set(tags) == {"A", "R"}
    assert is_mix(root) and not is_kin(root)


def test_the_mix_zoos_check_has_no_kinship_rule():
    from kinmerge.zoo.properties import problems
    p = {"skills": {"a1": "a", "a2": "a", "b1": "b"},
         "scores": {"base": {"a": 0.0, "b": 0.0}, "a1": {"a": 0.95, "b": 0.1},
                    "a2": {"a": 0.92, "b": 0.0}, "b1": {"a": 0.0, "b": 0.8}},
         "pcc": {"a1|a2": 0.1, "a1|b1": 0.3, "a2|b1": 0.2}}
    rule = "same-skill kinship 0.100 is not above every cross-skill kinship (max 0.300)"
    assert problems(p, 0.9, 0.5) == ["expert b1 scores 0.800 on b (needs >= 0.9)", rule]
    assert problems(p, 0.9, 0.5, kinship_rule=False) == [
        "expert b1 scores 0.800 on b (needs >= 0.9)"]
