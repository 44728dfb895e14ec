"""Per embedding-like tensor: which row of which input each output row takes.

`plan_rows` runs at planning time (no tensor data); `apply_rows` runs in the executor on
the inputs already cast to the working dtype, before the merge method sees them. The rule
for a token an input lacks is mergekit 0.1.5's: its row in the one input that has it; else
the base's, when the base is an input and has it; else the mean of the inputs that have it;
zeros when none has it. A token configured in the `tokenizer:` block takes its configured
row instead (in every input with `force`). Rows past the vocabulary (`pad_to_multiple_of`)
are each input's mean row.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from kinmerge.tokenizer.build import VocabPlan
from kinmerge.tokenizer.spec import ModelToken, TokenEmbedding, ZeroEmbedding, source_model

VOCAB_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight",
                  "tok_embeddings.weight", "embed_in.weight", "embed_out.weight")


def is_vocab_tensor(name: str) -> bool:
    """Tensors whose dim 0 is the vocabulary (input embeddings and output heads)."""
    return name.startswith("lm_head.") or name.endswith(VOCAB_SUFFIXES)


@dataclass(frozen=True)
class Fill:
    """A default row: the mean of `parts` (input position, input row), or the one part."""

    row: int
    parts: tuple[tuple[int, int], ...]  # () = zeros
    mean: bool
    force: bool = False  # replace the row in every input, not only where it is missing


@dataclass(frozen=True, eq=False)
class VocabRows:
    rows: int  # output rows
    n_tokens: int  # rows past this are padding
    take: torch.Tensor  # (n_inputs, n_tokens) long: the input's own row, or -1
    fills: tuple[Fill, ...]


def plan_rows(vp: VocabPlan, models: list[str], name: str,
              in_rows: list[int]) -> tuple[VocabRows | None, list[str]]:
    """Row maps for tensor `name` whose inputs are `models` (with `in_rows` rows each).
    None when every input already is the output's layout."""
    take = torch.stack([vp.perms[m] for m in models])
    problems = [f"{name}: model {m} has {r} rows, but its tokenizer uses row {int(t.max())}"
                for m, r, t in zip(models, in_rows, take) if int(t.max()) >= r]
    present = take >= 0
    cfgs = {vp.out.tokens[t]: (t, c) for t, c in (vp.spec.tokens or {}).items()
            if c.source is not None}
    need = sorted(set(torch.nonzero(~present.all(0)).flatten().tolist()) | set(cfgs))
    base = models.index(vp.base) if vp.base in models else None
    fills = []
    for i in need:
        if i in cfgs:
            fill, why = _configured(vp, models, i, *cfgs[i])
            problems += [f"{name}: {why}"] if why else []
        else:
            fill = _default(i, present[:, i].tolist(), take[:, i].tolist(), base)
        if fill is not None:
            fills.append(fill)
    n = vp.out.n_tokens
    identity = (not fills and vp.out.rows == n and all(r == n for r in in_rows)
                and bool((take == torch.arange(n)).all()))
    return (None if identity else VocabRows(vp.out.rows, n, take, tuple(fills))), problems


def _default(i: int, present: list[bool], take: list[int], base: int | None) -> Fill:
    have = [k for k, p in enumerate(present) if p]
    if len(have) == 1:
        return Fill(i, ((have[0], take[have[0]]),), mean=False)
    if not have:
        return Fill(i, (), mean=False)
    if base is not None and present[base]:
        return Fill(i, ((base, take[base]),), mean=False)
    return Fill(i, tuple((k, take[k]) for k in have), mean=True)


def _configured(vp: VocabPlan, models: list[str], i: int, token: str,
                cfg: TokenEmbedding) -> tuple[Fill | None, str | None]:
    if isinstance(cfg.source, ZeroEmbedding):
        return Fill(i, (), mean=False, force=cfg.force), None
    m = source_model(cfg)
    if m not in models:
        return None, (f"token {token!r} takes its row from {m}, which is not an input "
                      "of this tensor")
    k = models.index(m)
    if isinstance(cfg.source, ModelToken):
        row = cfg.source.token_id
        if row is None:
            row = vp.vocabs[m].ids.get(cfg.source.token, -1) if m in vp.vocabs else -1
        if row < 0 or (m in vp.vocabs and row >= vp.vocabs[m].rows):
            what = cfg.source.token if cfg.source.token is not None else f"id {row}"
            return None, f"token {token!r}: {what!r} is not in the vocabulary of {m}"
    else:
        row = int(vp.perms[m][i])
        if row < 0:
            return None, f"token {token!r} takes its row from {m}, whose vocabulary lacks it"
    return Fill(i, ((k, row),), mean=False, force=cfg.force), None


def apply_rows(vr: VocabRows, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each input laid out in the output vocabulary (same dtype, new tensors)."""
    defaults = {f.row: _fill_value(f, inputs) for f in vr.fills}
    out = []
    for k, t in enumerate(inputs):
        new = t.new_zeros((vr.rows, *t.shape[1:]))
        take = vr.take[k]
        have = torch.nonzero(take >= 0).flatten()
        new[have] = t[take[have]]
        for f in vr.fills:
            if f.force or take[f.row] < 0:
                new[f.row] = defaults[f.row]
        if vr.rows > vr.n_tokens:  # padding rows: the mean embedding
            new[vr.n_tokens:] = torch.mean(new[:vr.n_tokens], dim=0)
        out.append(new)
    return out


def _fill_value(f: Fill, inputs: list[torch.Tensor]) -> torch.Tensor:
    like = inputs[0]
    if not f.parts:
        return like.new_zeros(like.shape[1:])
    if not f.mean:
        k, r = f.parts[0]
        return inputs[k][r]
    acc = like.new_zeros(like.shape[1:])
    for k, r in f.parts:  # summed in input order, in the working dtype, as mergekit does
        acc = acc + inputs[k][r]
    return acc / len(f.parts)
