"""lm-eval task names are checked before a search starts (with a stand-in lm_eval package, so
this runs where lm-evaluation-harness is not installed)."""
from __future__ import annotations

import sys
import types

import pytest

from kinmerge.errors import KinmergeError
from kinmerge.evaluate.lm_eval import _task_manager, check_tasks
from kinmerge.evaluate.tasks import FitnessSpec, check_fitness


@pytest.fixture
def fake_lm_eval(monkeypatch):
    """lm_eval with a TaskManager that knows arc_easy and hellaswag (lm-eval's own) and,
    under an include_path, zoo_add; the calls are recorded."""
    calls = []

    class TaskManager:
        def __init__(self, include_path=None, include_defaults=True):
            calls.append((include_path, include_defaults))
            self.all_tasks = (["arc_easy", "hellaswag"] if include_defaults else []) + \
                (["zoo_add"] if include_path else [])

    pkg = types.ModuleType("lm_eval")
    tasks, models, hf = (types.ModuleType(n) for n in
                         ("lm_eval.tasks", "lm_eval.models", "lm_eval.models.huggingface"))
    tasks.TaskManager, hf.HFLM = TaskManager, object
    for name, mod in (("lm_eval", pkg), ("lm_eval.tasks", tasks), ("lm_eval.models", models),
                      ("lm_eval.models.huggingface", hf)):
        monkeypatch.setitem(sys.modules, name, mod)
    _task_manager.cache_clear()  # the index is kept a process: not across stand-ins
    yield calls
    _task_manager.cache_clear()


def test_known_tasks_pass(fake_lm_eval, tmp_path):
    check_tasks(["arc_easy", "hellaswag"])
    check_tasks(["zoo_add"], tmp_path)
    assert fake_lm_eval == [(None, True), (str(tmp_path.resolve()), False)]


def test_a_misspelt_task_is_named_with_a_suggestion(fake_lm_eval, tmp_path):
    with pytest.raises(KinmergeError) as e:
        check_tasks(["arc_easi"])
    assert e.value.message.startswith("lm-eval has no task 'arc_easi' among lm-eval's own "
                                      "tasks")
    assert e.value.where == "fitness.lm_eval"
    assert e.value.fix.startswith("did you mean 'arc_easy'? ")
    with pytest.raises(KinmergeError, match=r"no task 'zoo_ad' among the task YAMLs under"):
        check_tasks(["zoo_ad"], tmp_path)


def test_check_fitness_checks_both_splits_before_a_search(fake_lm_eval):
    spec = FitnessSpec(lm_eval=[{"task": "arc_easy", "heldout_task": "hellaswg"}])
    with pytest.raises(KinmergeError, match="no task 'hellaswg'.*"):
        check_fitness(spec, [])


def test_the_task_index_is_built_once_for_the_check_and_the_evaluators(fake_lm_eval):
    from kinmerge.evaluate.lm_eval import LmEval

    check_tasks(["arc_easy"])
    check_tasks(["hellaswag"])
    assert LmEval(["arc_easy"])._manager is None  # built on the first score, from the cache
    assert _task_manager(None) is _task_manager(None) and fake_lm_eval == [(None, True)]
