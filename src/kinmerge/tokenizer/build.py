"""The output vocabulary and, for every model, where each output token sits in its own rows.

mergekit 0.1.5's rules:
- `base`: the base model's vocabulary; `<model>`: that model's.
- `union`: the base's vocabulary, then tokens the other models have and the base lacks:
  first those that are no added token in any model, then every model's added tokens (model
  by model, id order; the first model's settings win). New tokens become added tokens of
  the output tokenizer, with ids after the base's.
- tokens named in the `tokenizer:` block's `tokens` that the result lacks are appended.
Models are taken base first, then in recipe order (mergekit iterates a set there, so the ids
of union tokens vary between its runs; kinmerge's order is fixed).
"""
from __future__ import annotations

import logging
from array import array
from dataclasses import dataclass

from kinmerge.errors import KinmergeError
from kinmerge.io.reader import ModelReader
from kinmerge.tokenizer.spec import TokenizerBlock, effective
from kinmerge.tokenizer.vocab import (AddedSpec, Vocab, has_tokenizer, is_vocab_tensor,
                                      read_vocab, vocab_rows)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutVocab:
    tokens: dict[str, int]  # output token -> output row
    source: str  # the model whose tokenizer files the output starts from
    appended: tuple[AddedSpec, ...]  # added to that tokenizer, in id order
    rows: int  # output embedding rows (n_tokens rounded up to pad_to_multiple_of)
    n_tokens: int


@dataclass(frozen=True, eq=False)
class VocabPlan:
    """The output vocabulary and each model's permutation (output row -> own row or -1),
    as plain int64 arrays: a plan is made without torch."""

    spec: TokenizerBlock
    out: OutVocab
    perms: dict[str, array]  # array("q") of out.n_tokens rows
    vocabs: dict[str, Vocab]
    base: str | None  # the recipe's base_model: its row wins for tokens several inputs lack
    by_index: bool = False  # no tokenizer files: rows matched by index, not by token


def plan_vocab(spec: TokenizerBlock, refs: list[str], base_model: str | None,
               readers: dict[str, ModelReader], rows: dict[str, int]) -> VocabPlan:
    """Read every model's vocabulary and decide the output's; `rows[m]`: m's embedding rows."""
    base = base_model or refs[0]  # the tokenizer the others are measured against
    if not has_tokenizer(readers[base].path):
        return _by_index(spec, refs, base, readers, rows)
    vocabs = {base: read_vocab(readers[base].path, rows[base])}
    for m in refs:
        if m in vocabs:
            continue
        if has_tokenizer(readers[m].path):
            vocabs[m] = read_vocab(readers[m].path, rows[m])
        else:  # as mergekit: a model without tokenizer files shares the base's
            log.warning("model %s has no tokenizer files; assuming the vocabulary of %s", m, base)
            b = vocabs[base]
            vocabs[m] = Vocab({t: i for t, i in b.ids.items() if i < rows[m]},
                              tuple(a for a in b.added if a[0] < rows[m]), rows[m], b.total)
    out = _out_vocab(spec, base, [base] + [m for m in refs if m != base], vocabs)
    perms = {m: _perm(out.tokens, out.n_tokens, v) for m, v in vocabs.items()}
    return VocabPlan(spec, out, perms, vocabs, base_model)


def _out_vocab(spec: TokenizerBlock, base: str, order: list[str],
               vocabs: dict[str, Vocab]) -> OutVocab:
    source = base if spec.source in ("base", "union") else spec.source
    src = vocabs[source]
    tokens = dict(src.ids)
    appended = _union_new(tokens, [vocabs[m] for m in order]) if spec.source == "union" else []
    appended += [AddedSpec(t) for t in (spec.tokens or {})
                 if t not in tokens and t not in {a.content for a in appended}]
    if appended and src.total > len(src.ids):
        raise KinmergeError(
            f"the tokenizer of {source} has {src.total - len(src.ids)} tokens beyond its "
            f"embedding's {src.rows} rows, and new tokens would be added after them",
            where=f"tokenizer source {source}",
            fix="use `tokenizer_source: <model>` with a model whose tokenizer fits its "
                "embedding, or remove the unused tokens from the tokenizer")
    first = (max(tokens.values()) + 1) if tokens else 0
    for k, a in enumerate(appended):
        tokens[a.content] = first + k
    n = max(tokens.values()) + 1
    pad = spec.pad_to_multiple_of
    rows = -(-n // pad) * pad if pad else n
    return OutVocab(tokens, source, tuple(appended), rows, n)


def _union_new(tokens: dict[str, int], vocabs: list[Vocab]) -> list[AddedSpec]:
    """Tokens of `vocabs` missing from `tokens`: plain ones first, then added ones."""
    added: dict[str, AddedSpec] = {}
    for v in vocabs:
        for _, a in v.added:
            added.setdefault(a.content, a)
    new: dict[str, AddedSpec] = {}
    for v in vocabs:
        for t in v.ids:
            if t not in tokens and t not in added and t not in new:
                new[t] = AddedSpec(t)  # mergekit adds them as plain (normalized) tokens
    for t, a in added.items():
        if t not in tokens and t not in new:
            new[t] = a
    return list(new.values())


def _perm(tokens: dict[str, int], n: int, v: Vocab) -> array:
    p = array("q", [-1]) * n
    ids = v.ids
    for t, i in tokens.items():
        j = ids.get(t)
        if j is not None:
            p[i] = j
    return p


def _by_index(spec: TokenizerBlock, refs: list[str], base: str,
              readers: dict[str, ModelReader], rows: dict[str, int]) -> VocabPlan:
    """No tokenizer to match tokens by: `base` keeps the base's rows, matched by index."""
    if spec.source != "base" or spec.tokens:
        raise KinmergeError(
            f"tokenizer source {spec.source!r} needs the models' tokenizers, and {base} has "
            "no tokenizer files (tokenizer.json or tokenizer.model)",
            where=f"model {base}", fix="add the tokenizer files, or use `tokenizer_source: "
            "base` to keep the base's rows matched by index")
    n = rows[base]
    pad = spec.pad_to_multiple_of
    out = OutVocab({}, base, (), -(-n // pad) * pad if pad else n, n)
    perms = {m: array("q", range(min(n, rows[m]))) + array("q", [-1]) * max(0, n - rows[m])
             for m in [base] + refs}
    return VocabPlan(spec, out, perms, {}, base, by_index=True)


def model_rows(reader: ModelReader, vocab_names: list[str]) -> int | None:
    """The embedding rows of a model: its config's vocab_size, else its embedding's rows."""
    n = vocab_rows(reader.config)
    if n is not None:
        return n
    for name in vocab_names:
        if name in reader:
            return reader.shape(name)[0]
    return None


def vocab_plan(recipe, readers: dict[str, ModelReader]) -> VocabPlan | None:
    """The recipe's vocabulary plan, or None when it sets no tokenizer."""
    spec = effective(recipe.tokenizer, recipe.tokenizer_source)
    if spec is None:
        return None
    refs = recipe.model_refs()
    rows = {}
    for m in refs:
        names = [n for n in readers[m].names() if is_vocab_tensor(n)]
        n = model_rows(readers[m], names)
        if n is None:
            raise KinmergeError(f"model {m} has no embedding and no vocab_size in config.json",
                                where=f"model {m}", fix="check that it is a language model")
        rows[m] = n
    return plan_vocab(spec, refs, recipe.base_model, readers, rows)
