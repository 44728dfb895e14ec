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

ZERO, MEAN = -1, -2  # fill sources that are not one input's row


@dataclass(frozen=True, eq=False)
class VocabRows:
    """How to lay each input's rows out in the output vocabulary.

    Output row i of input k is input k's row take[k, i] when that is >= 0 and the row is not
    forced; otherwise, for the rows listed in `fill_rows`, the fill value: input
    `fill_src[j]`'s row `fill_src_row[j]`, zeros (ZERO), or the mean over the inputs that
    have the token (MEAN), summed in input order as mergekit does."""

    rows: int  # output rows
    n_tokens: int  # rows past this are padding (the mean row)
    take: torch.Tensor  # (n_inputs, n_tokens) long: the input's own row, or -1
    fill_rows: torch.Tensor  # (n_fills,) long
    fill_src: torch.Tensor  # (n_fills,) long: an input position, ZERO or MEAN
    fill_src_row: torch.Tensor  # (n_fills,) long
    fill_force: torch.Tensor  # (n_fills,) bool: replace the row even where an input has it


def plan_rows(vp: VocabPlan, models: list[str], name: str,
              in_rows: list[int]) -> tuple[VocabRows | None, list[str]]:
    """Row maps for tensor `name` whose inputs are `models` (with `in_rows` rows each).
    None when every input already is the output's layout."""
    take = torch.stack([vp.perms[m] for m in models])
    problems = [f"{name}: model {m} has {r} rows, but its tokenizer uses row {int(t.max())}"
                for m, r, t in zip(models, in_rows, take) if int(t.max()) >= r]
    rows, src, src_row = _default_fills(take, models.index(vp.base) if vp.base in models
                                        else None)
    force = torch.zeros_like(rows, dtype=torch.bool)
    configured = []
    for token, cfg in (vp.spec.tokens or {}).items():
        if cfg.source is not None:
            fill, why = _configured(vp, models, vp.out.tokens[token], token, cfg)
            problems += [f"{name}: {why}"] if why else []
            configured += [fill] if fill else []
    if configured:  # a configured token replaces its default fill
        keep = ~torch.isin(rows, torch.tensor([f[0] for f in configured]))
        extra = torch.tensor(configured, dtype=torch.long).T
        rows, src = torch.cat([rows[keep], extra[0]]), torch.cat([src[keep], extra[1]])
        src_row = torch.cat([src_row[keep], extra[2]])
        force = torch.cat([force[keep], extra[3].bool()])
    n = vp.out.n_tokens
    identity = (rows.numel() == 0 and vp.out.rows == n and all(r == n for r in in_rows)
                and bool((take == torch.arange(n)).all()))
    vr = VocabRows(vp.out.rows, n, take, rows, src, src_row, force)
    return (None if identity else vr), problems


def _default_fills(take: torch.Tensor, base: int | None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mergekit's rule for each row some input lacks: the one input that has it, else the
    base when it has it, else the mean of those that have it; zeros when none has it."""
    present = take >= 0
    count = present.sum(0)
    rows = torch.nonzero(count < take.shape[0]).flatten()
    have, cnt = present[:, rows], count[rows]
    first = have.int().argmax(0)  # the lone donor where cnt == 1
    src = torch.where(cnt == 1, first, torch.full_like(first, MEAN))
    if base is not None:
        src = torch.where((cnt > 1) & have[base], torch.full_like(src, base), src)
    src = torch.where(cnt == 0, torch.full_like(src, ZERO), src)
    src_row = torch.where(src >= 0, take[src.clamp(min=0), rows], torch.zeros_like(src))
    return rows, src, src_row


def _configured(vp: VocabPlan, models: list[str], i: int, token: str,
                cfg: TokenEmbedding) -> tuple[tuple[int, int, int, int] | None, str | None]:
    """(output row, source input or ZERO, source row, force) of a token the block sets."""
    if isinstance(cfg.source, ZeroEmbedding):
        return (i, ZERO, 0, int(cfg.force)), None
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
    return (i, k, row, int(cfg.force)), None


def apply_rows(vr: VocabRows, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each input laid out in the output vocabulary (same dtype, new tensors)."""
    defaults = _fill_values(vr, inputs)  # (n_fills, *row shape)
    out = []
    for k, t in enumerate(inputs):
        new = t.new_zeros((vr.rows, *t.shape[1:]))
        take = vr.take[k]
        have = torch.nonzero(take >= 0).flatten()
        new[have] = t[take[have]]
        if vr.fill_rows.numel():
            use = vr.fill_force | (take[vr.fill_rows] < 0)
            new[vr.fill_rows[use]] = defaults[use]
        if vr.rows > vr.n_tokens:  # padding rows: the mean embedding
            new[vr.n_tokens:] = torch.mean(new[:vr.n_tokens], dim=0)
        out.append(new)
    return out


def _fill_values(vr: VocabRows, inputs: list[torch.Tensor]) -> torch.Tensor:
    """The default row of every fill, one gather per input."""
    like = inputs[0]
    values = like.new_zeros((vr.fill_rows.numel(), *like.shape[1:]))
    for k, t in enumerate(inputs):
        j = torch.nonzero(vr.fill_src == k).flatten()
        values[j] = t[vr.fill_src_row[j]]
    mean = torch.nonzero(vr.fill_src == MEAN).flatten()
    if mean.numel():
        rows = vr.fill_rows[mean]
        acc = like.new_zeros((mean.numel(), *like.shape[1:]))
        count = torch.zeros(mean.numel(), dtype=torch.long)
        for k, t in enumerate(inputs):  # zero + row + row ..., in input order, as mergekit
            at = vr.take[k, rows]
            has = torch.nonzero(at >= 0).flatten()
            acc[has] = acc[has] + t[at[has]]
            count += (at >= 0).long()
        values[mean] = acc / count.to(acc.dtype).view(-1, *[1] * (acc.dim() - 1))
    return values
