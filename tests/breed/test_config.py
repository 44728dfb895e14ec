"""breed.yml parsing: defaults, overrides, and every problem reported at once."""
import pytest

from kinmerge.search.breed import DEFAULT_OPERATOR, load_breed_config
from kinmerge.errors import KinmergeError

MINIMAL = {"pool": ["a", "b"], "base_model": "base", "fitness": {"function": "m:f"}}


def test_defaults_are_the_papers():
    cfg = load_breed_config(MINIMAL)
    assert cfg.k == 3 and cfg.explore and cfg.kinship.metric == "pcc"
    assert cfg.kinship.threshold == 0.9
    assert cfg.operator == DEFAULT_OPERATOR
    t = DEFAULT_OPERATOR["parameters"]["t"]
    assert t[0] == {"filter": "self_attn", "value": [0, 0.5, 0.3, 0.7, 1]}
    assert t[1] == {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]}
    assert t[2] == {"value": 0.5}


def test_command_line_overrides():
    cfg = load_breed_config(MINIMAL, k=4, explore=False, generations=2, evaluations=9, seed=None)
    assert (cfg.k, cfg.explore, cfg.budget.generations, cfg.budget.evaluations, cfg.seed) == (
        4, False, 2, 9, 0)


def test_stop_rules_do_not_change_the_fingerprint():
    a = load_breed_config(MINIMAL)
    assert a.fingerprint() == load_breed_config(MINIMAL, evaluations=50, generations=9).fingerprint()
    assert a.fingerprint() != load_breed_config(MINIMAL, explore=False).fingerprint()


def test_select_defaults_to_topk_and_keeps_old_fingerprints():
    # measured on main at 6cded63, before `select` existed: runs made then still resume
    assert load_breed_config(MINIMAL).fingerprint() == "7185708ac61bbe7d"
    old = load_breed_config(MINIMAL, explore=False, k=2, seed=3)
    assert old.select == "topk" and old.fingerprint() == "84df14c2d0c8fa51"
    assert load_breed_config({**MINIMAL, "select": "topk"}).fingerprint() == "7185708ac61bbe7d"
    predicted = load_breed_config(MINIMAL, select="predicted")
    assert predicted.select == "predicted" and predicted.fingerprint() != "7185708ac61bbe7d"
    # explore has no effect under select: predicted, so toggling it does not refuse a resume
    assert load_breed_config(MINIMAL, select="predicted", explore=False).fingerprint() == \
        predicted.fingerprint()


def test_select_names_its_choices():
    with pytest.raises(KinmergeError, match="select") as e:
        load_breed_config({**MINIMAL, "select": "greedy"})
    assert "'topk', 'predicted' or 'random'" in str(e.value)


def test_controls_keep_old_fingerprints_and_refuse_what_they_cannot_do():
    # the controls' fields at their defaults leave every earlier fingerprint as it was
    assert load_breed_config({**MINIMAL, "partner": "least_related", "stall": "stop"}
                             ).fingerprint() == "7185708ac61bbe7d"
    prints = {load_breed_config(MINIMAL, **kw).fingerprint() for kw in
              ({}, {"partner": "random"}, {"explore": False, "stall": "fill"},
               {"explore": False}, {"select": "random"}, {"select": "predicted"})}
    assert len(prints) == 6  # each control is a run of its own: it never resumes another
    with pytest.raises(KinmergeError) as e:
        load_breed_config({**MINIMAL, "explore": False, "partner": "random"})
    assert ("partner chooses exploration's partner: it needs select: topk and explore: true"
            in str(e.value))
    with pytest.raises(KinmergeError) as e:
        load_breed_config({**MINIMAL, "select": "predicted", "stall": "fill"})
    assert "stall: fill continues the top-k rule: it needs select: topk" in str(e.value)
    with pytest.raises(KinmergeError) as e:
        load_breed_config({**MINIMAL, "stall": "forever"})
    assert "stall: Input should be 'stop' or 'fill' (got 'forever')" in str(e.value)


def test_every_problem_at_once(tmp_path):
    f = tmp_path / "breed.yml"
    f.write_text("pool: [a]\nbase_model: b\nfitness: {}\nkk: 3\nkinship: {metrc: pcc}\n")
    with pytest.raises(KinmergeError) as e:
        load_breed_config(f)
    msg = str(e.value)
    assert "unknown key 'kk' (did you mean 'k'?)" in msg
    assert "unknown key 'kinship.metrc' (did you mean 'metric'?)" in msg
    assert "fitness needs tasks, lm_eval tasks or a function" in msg
    assert str(f) in msg


def test_operator_holds_no_models():
    with pytest.raises(KinmergeError, match="operator holds the method"):
        load_breed_config({**MINIMAL, "operator": {"merge_method": "slerp", "models": []}})


def test_the_zoo_example_parses():
    from pathlib import Path

    cfg = load_breed_config(Path(__file__).parents[2] / "examples" / "breed-zoo.yml")
    assert cfg.operator["merge_method"] == "task_arithmetic" and cfg.k == 3 and cfg.explore
    assert cfg.operator != DEFAULT_OPERATOR
    assert [t.name for t in cfg.fitness.tasks] == ["rev", "sort"]


def test_the_kin_example_is_what_the_benchmark_runs():
    """examples/breed-kin.yml and benchmarks/breed_science.py must describe the same run."""
    import importlib.util
    from pathlib import Path

    from kinmerge.zoo.family import ZooConfig
    root = Path(__file__).parents[2]
    spec = importlib.util.spec_from_file_location("bs", root / "benchmarks" / "breed_science.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cfg = load_breed_config(root / "examples" / "breed-kin.yml")
    kin = ZooConfig.kin()
    assert cfg.operator == bench.OPERATORS["ta"] and cfg.k == 3 and cfg.kinship.threshold is None
    assert cfg.pool == [f"zoo-kin/{e.name}" for e in kin.experts]
    assert [t.name for t in cfg.fitness.tasks] == list(kin.skills)
    assert cfg.budget.evaluations == bench.BUDGET


from datetime import timedelta  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402

anything = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=8),
                     st.sampled_from(["topk", "predicted", "random", "least_related", "fill",
                                      "stop"]))


@settings(max_examples=150, deadline=timedelta(seconds=2), database=None, derandomize=True)
@given(select=st.one_of(st.sampled_from(["topk", "predicted", "random"]), anything),
       partner=st.one_of(st.sampled_from(["least_related", "random"]), anything),
       stall=st.one_of(st.sampled_from(["stop", "fill"]), anything),
       explore=st.one_of(st.booleans(), anything))
def test_fuzz_the_strategy_fields(select, partner, stall, explore):
    """Whatever the four strategy fields hold: a config whose rule is one of the six (or the
    paper's with a field at its default), or one KinmergeError naming the field."""
    data = {**MINIMAL, "select": select, "partner": partner, "stall": stall,
            "explore": explore}
    try:
        cfg = load_breed_config(data)
    except KinmergeError as e:
        msg = str(e)
        assert msg.startswith("breed config has") and "fix: see docs/guides/breed.md" in msg
        return
    assert cfg.select in ("topk", "predicted", "random")
    if cfg.partner == "random":
        assert cfg.explore and cfg.select == "topk"
    if cfg.stall == "fill":
        assert cfg.select == "topk"
    assert cfg.fingerprint() == load_breed_config(cfg).fingerprint()
