"""Evolution's task scorers are kinmerge.evaluate's (kept importable here)."""
from kinmerge.evaluate.scorers import builtin_scorer, lm_eval_scorer  # noqa: F401
