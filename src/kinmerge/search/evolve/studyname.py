"""The name of a run's Optuna studies, kept inside OUT so a moved or copied OUT resumes them.

Studies are named `{prefix}:ps` and `{prefix}:dfs`. The prefix is written to OUT/study-name
on the first run and read back on every later one. Runs started before that file existed
named their studies after OUT's absolute path; such a run is recognised (its path, or the one
study family in its own study.db) and its name is adopted, so it resumes too.
"""
from __future__ import annotations

import logging
import uuid
from pathlib import Path

from kinmerge.errors import KinmergeError

log = logging.getLogger(__name__)
FILE = "study-name"
PHASES = ("ps", "dfs")


def study_prefix(out: Path, storage: str, default_storage: bool) -> str:
    """The stored prefix; on a first run, the adopted old one or a new unique one."""
    f = out / FILE
    if f.exists():
        return f.read_text().strip()
    prefix = _adopt(out, storage, default_storage) or f"{out.resolve().name}-{uuid.uuid4().hex[:8]}"
    f.write_text(prefix + "\n")
    return prefix


def _adopt(out: Path, storage: str, default_storage: bool) -> str | None:
    """The prefix of a study this OUT started before study-name existed, if any."""
    if default_storage and not (out / "study.db").exists():
        return None
    import optuna

    from kinmerge.search.evolve.search import rdb_storage

    names = {s.study_name for s in optuna.get_all_study_summaries(rdb_storage(storage))}
    old = {n.rsplit(":", 1)[0] for n in names if n.rsplit(":", 1)[-1] in PHASES}
    here = str(out.resolve())
    if here in old:
        return here
    if not default_storage or not old:
        return None
    if len(old) > 1:
        raise KinmergeError(f"{out / 'study.db'} holds studies of {len(old)} runs and "
                            f"{out / FILE} does not say which is this run's",
                            where=str(out / "study.db"),
                            fix=f"write the name of this run's study (without :ps) into "
                                f"{out / FILE}; the studies are: {', '.join(sorted(old))}")
    prefix = old.pop()
    log.info("this run's studies are named %s:* (after the folder the run started in)", prefix)
    return prefix
