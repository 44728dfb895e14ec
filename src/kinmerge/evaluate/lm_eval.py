"""lm-evaluation-harness as an Evaluator (optional extra: `pip install kinmerge[lm-eval]`).

Any lm-eval task works, including local task YAMLs over local JSONL files (`include_path`);
`write_local_task` writes one for a prompt/answer or multiple-choice file such as the zoo's.
The model may be a directory or in-memory weights: it is wrapped in lm-eval's `HFLM`, and the
last module an evaluator scored is re-scored without re-wrapping.

>>> ev = LmEval(["zoo_add"], include_path="tasks/")                      # doctest: +SKIP
>>> ev("zoo/add")                                                        # doctest: +SKIP
{'zoo_add/exact_match': 0.995}
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

from kinmerge.errors import KinmergeError
from kinmerge.evaluate.model import ModelLike, load_model

log = logging.getLogger(__name__)


def require_lm_eval() -> None:
    """Fail now, clearly, if lm-eval is missing (before a long run gets to it)."""
    _import_lm_eval()


def _import_lm_eval():
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError as e:
        raise KinmergeError(f"lm-evaluation-harness is not installed ({e})", where="lm_eval",
                            fix="pip install 'kinmerge[lm-eval]'") from None
    return lm_eval, HFLM, TaskManager


def check_tasks(names: list[str], include_path: str | Path | None = None) -> None:
    """Fail now, naming it, if lm-eval knows no task of one of `names` (with `include_path`,
    among its local task YAMLs; without, among lm-eval's own tasks), before a long run
    reaches its first score."""
    import difflib

    path = str(Path(include_path).resolve()) if include_path else None
    known = set(_task_manager(path).all_tasks)
    for name in dict.fromkeys(names):
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            where = f"the task YAMLs under {include_path}" if include_path else \
                "lm-eval's own tasks"
            raise KinmergeError(f"lm-eval has no task {name!r} among {where}",
                                where="fitness.lm_eval",
                                fix=f"{hint}`lm_eval ls tasks` lists lm-eval's tasks; a local "
                                    "task needs its folder as include_path")


@functools.lru_cache(maxsize=8)
def _task_manager(include_path: str | None):
    """lm-eval's task index: with `include_path`, its local YAMLs alone (lm-eval's own ~10k
    task files are not indexed: that costs ~15 s); without, lm-eval's own tasks. Built once a
    process, shared by the name check and every evaluator."""
    _, _, TaskManager = _import_lm_eval()
    return TaskManager(include_path=include_path, include_defaults=include_path is None)


class LmEval:
    """Scores from lm-eval tasks, as {"<task>/<metric>": value} (stderr and filters dropped)."""

    def __init__(self, tasks: list[str], *, include_path: str | Path | None = None,
                 limit: int | None = None, batch_size: int = 64, device: str = "cpu",
                 add_bos_token: bool = True, name: str = "lm_eval",
                 keep_wrapper: bool = True):
        """keep_wrapper=False: wrap each model anew and keep no reference to it (evolution
        scores a fresh module per candidate; keeping each wrapper would keep each model)."""
        self.tasks, self.limit, self.name = list(tasks), limit, name
        self.keep_wrapper = keep_wrapper
        self.include_path = str(Path(include_path).resolve()) if include_path else None
        self.batch_size, self.device, self.add_bos_token = batch_size, device, add_bos_token
        self._manager = None
        # the last module scored and its HFLM wrapper: one, so an evaluator keeps at most one
        # model alive (the wrapper holds its module)
        self._wrapped: tuple[object, object] | None = None

    def __call__(self, model: ModelLike) -> dict[str, float]:
        lm_eval, HFLM, _ = _import_lm_eval()
        if self._manager is None:
            self._manager = _task_manager(self.include_path)
        m = load_model(model, self.device)
        lm = None
        if self.keep_wrapper and self._wrapped and self._wrapped[0] is m.module:
            lm = self._wrapped[1]
        if lm is None:
            lm = HFLM(pretrained=m.module, tokenizer=m.tokenizer, batch_size=self.batch_size,
                      device=str(m.device), add_bos_token=self.add_bos_token)
            if self.keep_wrapper:
                self._wrapped = (m.module, lm)
        out = lm_eval.simple_evaluate(model=lm, tasks=self.tasks, limit=self.limit,
                                      task_manager=self._manager, log_samples=False,
                                      verbosity="ERROR")
        scores: dict[str, float] = {}
        for task, metrics in out["results"].items():
            for key, value in metrics.items():
                metric, _, _ = key.partition(",")
                # lm-eval also reports bookkeeping numbers (sample_len) beside the metrics
                if (isinstance(value, (int, float)) and "stderr" not in metric
                        and metric != "sample_len"):
                    scores[f"{task}/{metric}"] = float(value)
        return scores


def write_local_task(out_dir: str | Path, name: str, data_file: str | Path, *,
                     kind: str = "generate_until", max_gen_toks: int = 16) -> Path:
    """An lm-eval task YAML over a local JSONL file (absolute path: lm-eval resolves data
    files from the working directory, not from the YAML).

    `generate_until`: rows {"prompt", "answer"}, metric exact_match.
    `multiple_choice`: rows {"prompt", "choices", "answer" (index)}, metric acc.
    """
    data_file = Path(data_file).resolve()
    head = {"task": name, "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(data_file)}},
            "test_split": "test", "output_type": kind, "doc_to_text": "{{prompt}}",
            "target_delimiter": ""}  # character vocabularies: no space before the answer
    if kind == "generate_until":
        body = {"doc_to_target": "{{answer}}",
                "generation_kwargs": {"until": ["\n"], "max_gen_toks": max_gen_toks,
                                      "do_sample": False},
                "metric_list": [{"metric": "exact_match", "aggregation": "mean",
                                 "higher_is_better": True}]}
    elif kind == "multiple_choice":
        body = {"doc_to_choice": "{{choices}}", "doc_to_target": "{{answer}}",
                "metric_list": [{"metric": "acc", "aggregation": "mean",
                                 "higher_is_better": True}]}
    else:
        raise KinmergeError(f"unknown lm-eval task kind {kind!r}", where="write_local_task",
                            fix="use generate_until or multiple_choice")
    out = Path(out_dir) / f"{name}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    # JSON is valid YAML, and needs no YAML writer that might reorder or restyle keys
    out.write_text(json.dumps({**head, **body, "metadata": {"version": 1.0}}, indent=2) + "\n")
    return out
