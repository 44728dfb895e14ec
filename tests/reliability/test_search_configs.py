"""Issue 18 (evolve/breed/soup configs and task files): every number bounded, task files read
through one reader, fitness NaN handled by a stated policy, and everything checked before OUT,
the optuna study or the breed database exists. Ends with a fuzzer of the three configs."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import given, strategies as st

from kinmerge.errors import ConfigError, KinmergeError
from kinmerge.evaluate.base import MAX_TASK_BYTES, read_task_lines
from kinmerge.search.breed.config import load_breed_config
from kinmerge.search.evolve import evolve
from kinmerge.search.evolve.config import load_evolve_config
from kinmerge.search.soup import load_soup_config, soup
from kinmerge.zoo.synthetic import synthetic_llama

from fuzz_kit import fuzz, time_limit
from inputs_kit import TINY, assert_clean_failure, cli

FN = {"function": "fitness_standins:constant"}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """A tiny base (with a tokenizer) and two fine-tunes (without), and a task file."""
    root = tmp_path_factory.mktemp("searchcfg")
    base = synthetic_llama(root / "base", seed=0, **TINY)
    fts = [synthetic_llama(root / f"ft{i}", base=base, seed=i, **TINY) for i in (1, 2)]
    task = root / "task.jsonl"
    task.write_text('{"prompt": "1+1=", "answer": "2"}\n')
    return {"base": str(base), "fts": [str(f) for f in fts], "task": str(task), "root": root}


@pytest.fixture
def standins(tmp_path, monkeypatch):
    """An importable fitness module: constant, NaN, or a string, as FITNESS_MODE says."""
    (tmp_path / "fitness_standins.py").write_text(
        "import os\n"
        "def constant(candidate, split):\n"
        "    mode = os.environ.get('FITNESS_MODE', 'one')\n"
        "    return {'one': 1.0, 'nan': float('nan'), 'text': 'high'}[mode]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def evolve_cfg(models, **over) -> dict:
    return {"base_model": models["base"], "models": models["fts"], "fitness": FN,
            "template": {"merge_method": "task_arithmetic", "dtype": "float32"},
            "search": {"params": {"weight": [0.0, 1.0]}},
            "budget": {"trials": 2, "popsize": 2}, "baselines": {"grid": False}, **over}


def problems(load, data) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load(data)
    return e.value.problems


# --- numbers in range ------------------------------------------------------------------------

@pytest.mark.parametrize("over, text", [
    ({"budget": {"trials": 0}}, "budget.trials: Input should be greater than or equal to 1 (got 0)"),
    ({"budget": {"trials": -3}}, "budget.trials: Input should be greater than or equal to 1"),
    ({"budget": {"trials": "1e3"}}, "budget.trials: Input should be a valid integer (got '1e3')"),
    ({"budget": {"trials": 10**9}}, "budget.trials: Input should be less than or equal to 1000000"),
    ({"seed": 2**70}, "seed: Input should be less than or equal to 4294967295"),
    ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
    ({"search": {"params": {"weight": [0, math.inf]}}},
     "search.params.weight[1]: Input should be a finite number (got inf)"),
    ({"search": {"params": {"weight": [math.nan, 1]}}},
     "search.params.weight[0]: Input should be a finite number (got nan)"),
    ({"search": {"layer_groups": 10**6}}, "search.layer_groups: Input should be less than or "
                                          "equal to 1024"),
    ({"dfs": {"repeats": 0}}, "dfs.repeats: Input should be greater than or equal to 1"),
    ({"dfs": {"scale_range": [1.5, 0.5]}}, "scale_range must have low < high"),
])
def test_evolve_numbers_are_bounded(models, over, text):
    got = problems(load_evolve_config, evolve_cfg(models, **over))
    assert any(text in p for p in got), got


@pytest.mark.parametrize("over, text", [
    ({"kinship": {"threshold": math.nan}}, "kinship.threshold: Input should be a finite number"),
    ({"kinship": {"threshold": 2.0}}, "must lie in [-1, 1], got 2.0"),
    ({"kinship": {"metric": "ed", "threshold": -1}}, "must be >= 0, got -1"),
    ({"budget": {"generations": 0}}, "budget.generations: Input should be greater than or "
                                     "equal to 1"),
    ({"k": 1}, "k: Input should be greater than or equal to 2"),
    ({"seed": 2**70}, "seed: Input should be less than or equal to 4294967295"),
])
def test_breed_numbers_are_bounded(models, over, text):
    cfg = {"pool": models["fts"], "base_model": models["base"], "fitness": FN, **over}
    got = problems(load_breed_config, cfg)
    assert any(text in p for p in got), got


def test_fitness_weights_and_limits_are_bounded(models):
    cfg = {"ingredients": models["fts"], "fitness": {
        "tasks": [{"name": "t", "search": models["task"], "weight": math.nan}],
        "lm_eval": [{"task": "x", "limit": 0, "weight": -1}]}}
    assert problems(load_soup_config, cfg) == [
        "fitness.tasks[0].weight: Input should be a finite number (got nan)",
        "fitness.lm_eval[0].weight: Input should be greater than or equal to 0 (got -1)",
        "fitness.lm_eval[0].limit: Input should be greater than or equal to 1 (got 0)"]


@pytest.mark.parametrize("target, text", [
    ("my_fitness.py:score", "'my_fitness.py:score' is a file path, not a module name: put the "
                            "file's folder on PYTHONPATH and write module:function"),
    ("/home/me/fit.py:score", "is a file path, not a module name"),
    (".relative:score", "is not of the form package.module:callable"),
    ("nocolon", "is not of the form package.module:callable"),
])
def test_fitness_function_given_as_a_path(models, target, text):
    got = problems(load_soup_config, {"ingredients": models["fts"],
                                      "fitness": {"function": target}})
    assert len(got) == 1 and text in got[0], got


def test_trials_on_the_command_line_are_bounded(models, tmp_path, standins):
    f = tmp_path / "evolve.yml"
    f.write_text(yaml.safe_dump(evolve_cfg(models)))
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"trials must be a whole number in \[1, 1000000\], "
                                          r"got -3"):
        evolve(f, out, trials=-3)
    assert_clean_failure(cli("evolve", f, "--out", out, "--trials", "-3"),
                         "trials must be a whole number in [1, 1000000], got -3")
    assert_clean_failure(cli("evolve", f, "--out", out, "--workers", "0"),
                         "workers must be a whole number in [1, 256], got 0")
    assert not out.exists()


# --- task files: one reader -----------------------------------------------------------------

@pytest.mark.parametrize("how, text", [
    ("latin1", "is not UTF-8 text: byte 0xe9 at line 2"),
    ("fifo", "is a FIFO (named pipe), not a regular file"),
    ("folder", "is a folder, not a regular file"),
    ("missing", "not found"),
    ("huge", f"more than the {MAX_TASK_BYTES // 2**20} MiB a task file may have"),
])
def test_task_file_reader(tmp_path, how, text):
    f = tmp_path / "task.jsonl"
    if how == "latin1":
        f.write_bytes(b'{"prompt": "a", "answer": "b"}\n{"prompt": "caf\xe9"}\n')
    elif how == "fifo":
        os.mkfifo(f)
    elif how == "folder":
        f.mkdir()
    elif how == "huge":
        with f.open("wb") as h:
            h.truncate(MAX_TASK_BYTES + 1)
    with pytest.raises(KinmergeError) as e:
        read_task_lines(f)
    assert text in str(e.value) and e.value.where == str(f)


def test_bad_task_file_fails_before_the_study_exists(models, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\xff\xfe not utf-8\n")
    cfg = evolve_cfg(models, fitness={"tasks": [{"name": "t", "search": str(bad)}]})
    out = tmp_path / "run"
    with pytest.raises(KinmergeError, match="is not UTF-8 text: byte 0xff at line 1"):
        evolve(cfg, out)
    assert not out.exists()  # no OUT, hence no study.db
    f = tmp_path / "evolve.yml"
    f.write_text(yaml.safe_dump(cfg))
    assert_clean_failure(cli("evolve", f, "--out", out), "is not UTF-8 text")
    assert not out.exists()


def test_heldout_file_is_checked_up_front_too(models, tmp_path):
    cfg = {"pool": models["fts"], "base_model": models["base"],
           "fitness": {"tasks": [{"name": "t", "search": models["task"],
                                  "heldout": str(tmp_path / "gone.jsonl")}]}}
    from kinmerge.search.breed import breed
    out = tmp_path / "run"
    with pytest.raises(KinmergeError, match="gone.jsonl: not found"):
        breed(cfg, out)
    assert not out.exists()  # no breed.db


def test_task_fitness_on_models_without_a_tokenizer(models, tmp_path):
    cfg = {"ingredients": models["fts"],  # the fine-tunes have no tokenizer files
           "fitness": {"tasks": [{"name": "t", "search": models["task"]}]}}
    out = tmp_path / "soup"
    with pytest.raises(KinmergeError) as e:
        soup(cfg, out)
    assert f"no tokenizer could be loaded from {models['fts'][0]}" in str(e.value)
    assert "copy them from the base model" in str(e.value)
    assert not out.exists()


def test_breed_pool_entry_that_does_not_exist(models, tmp_path, standins):
    """The regression: a clean error before anything runs, not a KeyError from the fitness."""
    gone = str(tmp_path / "no-such-model")
    cfg = {"pool": [models["fts"][0], gone], "base_model": models["base"], "fitness": FN}
    from kinmerge.search.breed import breed
    out = tmp_path / "run"
    with pytest.raises(KinmergeError) as e:
        breed(cfg, out)
    assert f"breed config pool: model {gone!r} not found: no folder {gone}" in str(e.value)
    assert not out.exists()
    f = tmp_path / "breed.yml"
    f.write_text(yaml.safe_dump(cfg))
    assert_clean_failure(cli("breed", f, "--out", out), "breed config pool: model")


# --- NaN fitness: the policies ----------------------------------------------------------------

def test_soup_refuses_a_nan_score_naming_the_ingredient(models, tmp_path, standins, monkeypatch):
    monkeypatch.setenv("FITNESS_MODE", "nan")
    cfg = {"ingredients": models["fts"], "fitness": FN}
    with pytest.raises(KinmergeError) as e:
        soup(cfg, tmp_path / "soup")
    assert f"the fitness of model {models['fts'][0]} on the search split is nan" in str(e.value)
    assert not (tmp_path / "soup" / "soup").exists()  # nothing merged


def test_breed_refuses_a_nan_score_naming_the_model(models, tmp_path, standins, monkeypatch):
    monkeypatch.setenv("FITNESS_MODE", "nan")
    from kinmerge.search.breed import breed
    cfg = {"pool": models["fts"], "base_model": models["base"], "fitness": FN,
           "budget": {"generations": 1}}
    with pytest.raises(KinmergeError) as e:
        breed(cfg, tmp_path / "run", plots=False)
    assert "the fitness of model " in str(e.value) and "on the search split is nan" in str(e.value)
    assert "ft1" in str(e.value) or "ft2" in str(e.value)


def test_a_fitness_returning_text_is_named(models, tmp_path, standins, monkeypatch):
    monkeypatch.setenv("FITNESS_MODE", "text")
    with pytest.raises(KinmergeError, match=r"the fitness returned 'high' \(str\) as score "
                                            r"'function' of model .*ft1, not a number"):
        soup({"ingredients": models["fts"], "fitness": FN}, tmp_path / "soup")


def test_evolve_all_nan_trials_is_one_error(models, tmp_path, standins, monkeypatch, caplog):
    """Policy: a NaN trial is a failed trial (optuna's rule), named in a warning; when every
    trial failed there is no winner, and that is one error, not a traceback."""
    monkeypatch.setenv("FITNESS_MODE", "nan")
    with pytest.raises(KinmergeError, match="ps: every trial's fitness was NaN or failed"):
        evolve(evolve_cfg(models), tmp_path / "run")
    assert "trial 0 scored nan" in caplog.text
    monkeypatch.setenv("FITNESS_MODE", "one")  # the control: the same run succeeds
    r = evolve(evolve_cfg(models), tmp_path / "run2")
    assert r.summary.best_search == 1.0


# --- the fuzzer -------------------------------------------------------------------------------

scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**70), st.text(max_size=5),
                   st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0, 1, -3, 2**32, "1e3", ".inf", [0, 1], [0, math.inf]]))
junk = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6)


def fuzzed(base: dict, keys: dict) -> st.SearchStrategy:
    """`base` with some of `keys` replaced by plausible or junk values (nested by dots)."""
    def apply(picks):
        out = json.loads(json.dumps(base))
        for key, value in picks.items():
            node, *path = key.split(".")
            target = out
            for part in [node, *path][:-1]:
                target = target.setdefault(part, {}) if isinstance(target.get(part, {}), dict) \
                    else {}
            target[[node, *path][-1]] = value
        return out
    return st.fixed_dictionaries({}, optional={k: st.one_of(v, junk) for k, v in keys.items()}
                                 ).map(apply)


COUNT = st.integers(-3, 10**7)
RANGE = st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=3)


@fuzz(150, 3000)
@given(data=st.data())
@time_limit()
def test_fuzz_search_configs(models, data):
    """Whatever the three configs hold: loaded with every number in its range, or one
    ConfigError with at least one problem; nothing else escapes."""
    kind = data.draw(st.sampled_from(["evolve", "breed", "soup"]))
    tasks = st.lists(st.fixed_dictionaries({"name": st.text(min_size=1, max_size=4),
                                            "search": st.just(models["task"])},
                                           optional={"weight": scalar}), max_size=2)
    fitness = st.one_of(st.just(FN), st.fixed_dictionaries({"tasks": tasks}),
                        st.fixed_dictionaries({"function": st.one_of(
                            st.text(max_size=12), st.just("a/b.py:f"))}), junk)
    if kind == "evolve":
        cfg, load = data.draw(fuzzed(evolve_cfg(models), {
            "budget.trials": COUNT, "budget.dfs_trials": COUNT, "budget.popsize": COUNT,
            "seed": st.integers(-5, 2**70), "search.params.weight": RANGE,
            "search.layer_groups": COUNT, "dfs.repeats": COUNT, "dfs.scale_range": RANGE,
            "baselines.weights": st.lists(scalar, max_size=3), "fitness": fitness,
            "mode": st.sampled_from(["ps", "dfs", "ps+dfs", "x"])})), load_evolve_config
    elif kind == "breed":
        cfg, load = data.draw(fuzzed(
            {"pool": models["fts"], "base_model": models["base"], "fitness": FN},
            {"k": COUNT, "seed": st.integers(-5, 2**70), "budget.generations": COUNT,
             "budget.evaluations": COUNT, "kinship.threshold": scalar, "fitness": fitness,
             "kinship.metric": st.sampled_from(["pcc", "cs", "ed", "x"])})), load_breed_config
    else:
        cfg, load = data.draw(fuzzed({"ingredients": models["fts"], "fitness": FN},
                                     {"dtype": scalar, "fitness": fitness,
                                      "ingredients": st.lists(st.text(max_size=3))})), \
            load_soup_config
    try:
        loaded = load(cfg)
    except ConfigError as e:
        assert e.problems and all(isinstance(p, str) and p for p in e.problems)
        return
    numbers = json.dumps(loaded.model_dump(mode="json"))
    assert "NaN" not in numbers and "Infinity" not in numbers  # nothing non-finite accepted
    for key in ("seed",):
        v = getattr(loaded, key, 0)
        assert 0 <= v < 2**32
    budget = getattr(loaded, "budget", None)
    for field in ("trials", "dfs_trials", "generations", "evaluations"):
        v = getattr(budget, field, None)
        assert v is None or 1 <= v <= 10**6
