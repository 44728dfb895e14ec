"""Which tensors to compare, under which stored names, over how many elements.

Everything that can be wrong with the inputs is found here, before any tensor is read, and
reported at once: different architectures, tensors of the base missing from a model, shapes
that differ in more than their first dimension.

The delta vector runs over every floating-point tensor the base stores
(docs/concepts/kinship-metrics.md).
A model with tied embeddings has no `lm_head.weight` of its own: its input embedding stands in.
Tensors whose first dimension differs (a vocabulary extended by a fine-tune) are compared on
their shared leading rows, and a warning names them.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from kinmerge.errors import KinmergeError
from kinmerge.io.reader import ModelReader

log = logging.getLogger(__name__)

LM_HEAD = "lm_head.weight"
EMBEDDING_NAMES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight",
                   "embed_in.weight", "tok_embeddings.weight", "shared.weight")


@dataclass(frozen=True)
class TensorJob:
    """One tensor of the delta vector."""

    name: str  # the base's name for it (what reports show)
    sources: tuple[str, ...]  # the stored name to read in each input, base first
    numel: int  # elements compared: the whole tensor, or its shared leading rows
    rows: int | None = None  # set when only the first `rows` rows are compared


@dataclass(frozen=True)
class KinshipPlan:
    jobs: tuple[TensorJob, ...]
    notes: tuple[str, ...]  # what the user should know (shared rows, ignored tensors)

    @property
    def numel(self) -> int:
        return sum(j.numel for j in self.jobs)


def embedding_name(reader: ModelReader) -> str | None:
    """The stored input embedding, which a tied lm_head shares."""
    names = reader.names()
    for suffix in EMBEDDING_NAMES:
        for n in names:
            if n.endswith(suffix):
                return n
    return None


def _resolve(reader: ModelReader, name: str) -> str | None:
    """The stored tensor that holds `name` in this model, or None."""
    if name in reader:
        return name
    if name == LM_HEAD and reader.tied_embeddings:
        return embedding_name(reader)
    return None


def _arch(reader: ModelReader) -> str | None:
    c = reader.config
    archs = c.get("architectures") or []
    return c.get("model_type") or (archs[0] if archs else None)


def base_vocab(base: ModelReader) -> int | None:
    """Rows of the base's output embedding: ModelKinship truncates every tensor to this."""
    src = _resolve(base, LM_HEAD) or embedding_name(base)
    if src:
        return base.shape(src)[0]
    v = base.config.get("vocab_size")
    return int(v) if isinstance(v, int) else None


def plan_kinship(readers: list[ModelReader], labels: list[str],
                 compat: bool = False) -> KinshipPlan:
    """Plan the comparison of `readers[1:]` against the base `readers[0]`."""
    problems = _architecture_problems(readers, labels)
    names = _compared_names(readers[0], compat)
    vocab = base_vocab(readers[0]) if compat else None
    jobs, shared, missing = [], [], {lab: [] for lab in labels[1:]}
    for name in names:
        srcs = [_resolve(r, name) for r in readers]
        absent = [lab for lab, s in zip(labels, srcs) if s is None]
        for lab in absent:
            missing[lab].append(name)
        if absent:
            continue
        shapes = [tuple(r.shape(s)) for r, s in zip(readers, srcs)]
        job, problem = _job(name, tuple(srcs), shapes, labels, vocab)
        if problem:
            problems.append(problem)
        elif job:
            jobs.append(job)
            if job.rows is not None:
                rows = ", ".join(f"{lab} {s[0]}" for lab, s in zip(labels, shapes))
                shared.append((name, rows))
    for lab, gone in missing.items():
        if gone:
            more = f" and {len(gone) - 3} more" if len(gone) > 3 else ""
            problems.append(f"{lab} lacks {len(gone)} tensor(s) of the base: "
                            f"{', '.join(gone[:3])}{more}")
    if problems:
        raise KinmergeError(
            f"cannot compare these models ({len(problems)} problem"
            f"{'s' if len(problems) > 1 else ''}):\n" + "\n".join(f"  - {p}" for p in problems),
            where=f"base {readers[0].ref}; models {', '.join(r.ref for r in readers[1:])}",
            fix="kinship compares fine-tunes of one base: give models of the same architecture "
                "and the base they were all fine-tuned from")
    notes = []
    if shared:
        notes.append(_shared_rows_note(shared, vocab if compat else None))
        log.warning("%s", notes[-1])
        log.debug("compared rows per tensor: %s",
                  "; ".join(f"{name} ({rows})" for name, rows in shared))
    extra = _extra_tensors(readers, labels, set(names))
    if extra:
        notes.append(extra)
        log.info("%s", extra)
    return KinshipPlan(tuple(jobs), tuple(notes))


def _shared_rows_note(shared: list[tuple[str, str]], vocab: int | None) -> str:
    """One line on the tensors compared on part of their rows (`-v` logs each one's rows).

    In compat mode the cut is ModelKinship's quirk, applied by request, often to every
    matrix of a small model: a count says it; the per-tensor list would bury the result."""
    if vocab is not None:
        n = len(shared)
        return f"--compat modelkinship: {n} tensor{'s' if n > 1 else ''} cut to the base's " \
               f"{vocab} vocabulary rows"
    names = [name for name, _ in shared]
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return ("vocabulary sizes differ; compared the shared leading rows of "
            + ", ".join(names[:3]) + more)


def _architecture_problems(readers: list[ModelReader], labels: list[str]) -> list[str]:
    archs = [_arch(r) for r in readers]
    if len({a for a in archs if a}) <= 1:
        return []
    return ["different architectures: " + ", ".join(
        f"{lab} is {a or 'unknown'}" for lab, a in zip(labels, archs))]


def _compared_names(base: ModelReader, compat: bool) -> list[str]:
    """The base's floating-point tensors (buffers such as int position ids are not weights)."""
    names = [n for n in base.names() if base.dtype(n).is_floating_point]
    if len(names) < len(base.names()):
        log.debug("%d non-floating-point tensors of the base are not compared",
                  len(base.names()) - len(names))
    if compat and base.tied_embeddings and embedding_name(base):
        # ModelKinship loads the model, whose state dict lists the tied head a second time
        names.append(LM_HEAD)
    return names


def _extra_tensors(readers: list[ModelReader], labels: list[str], compared: set[str]) -> str:
    """Tensors a fine-tune has and the base lacks: outside the delta, so worth a note."""
    parts = []
    for lab, r in zip(labels[1:], readers[1:]):
        extra = [n for n in r.names() if n not in compared and r.dtype(n).is_floating_point
                 and n not in readers[0]]
        if extra:
            parts.append(f"{lab}: {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}")
    return ("not compared (the base has no such tensor): " + "; ".join(parts)) if parts else ""


def _job(name: str, srcs: tuple[str, ...], shapes: list[tuple[int, ...]], labels: list[str],
         vocab: int | None) -> tuple[TensorJob | None, str | None]:
    """The job for one tensor, or the problem that prevents it."""
    if len({len(s) for s in shapes}) > 1 or len({s[1:] for s in shapes}) > 1:
        return None, (f"{name} has shapes that differ beyond the first dimension: "
                      + ", ".join(f"{lab} {list(s)}" for lab, s in zip(labels, shapes)))
    if not shapes[0]:  # a scalar
        return TensorJob(name, srcs, 1), None
    rows = min(s[0] for s in shapes)
    if vocab is not None:
        rows = min(rows, vocab)  # ModelKinship's quirk: [:vocab] on every tensor
    full = all(s[0] == rows for s in shapes)
    numel = rows * math.prod(shapes[0][1:])
    return TensorJob(name, srcs, numel, None if full else rows), None
