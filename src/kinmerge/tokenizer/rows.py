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

from array import array
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from kinmerge.tokenizer.build import VocabPlan
from kinmerge.tokenizer.spec import ModelToken, TokenEmbedding, ZeroEmbedding, source_model

if TYPE_CHECKING:  # the row maps are planned without torch; apply_rows makes tensors
    import torch

ZERO, MEAN = -1, -2  # fill sources that are not one input's row


@dataclass(frozen=True, eq=False)
class VocabRows:
    """How to lay each input's rows out in the output vocabulary.

    Output row i of input k is input k's row take[k][i] when that is >= 0 and the row is not
    forced; otherwise, for the rows listed in `fill_rows`, the fill value: input
    `fill_src[j]`'s row `fill_src_row[j]`, zeros (ZERO), or the mean over the inputs that
    have the token (MEAN), summed in input order as mergekit does. Plain ints (a plan is
    made without torch); `apply_rows` turns them into index tensors once."""

    rows: int  # output rows
    n_tokens: int  # rows past this are padding (the mean row)
    take: tuple[array, ...]  # per input, array("q") of n_tokens: the input's own row, or -1
    fill_rows: tuple[int, ...]
    fill_src: tuple[int, ...]  # an input position, ZERO or MEAN
    fill_src_row: tuple[int, ...]
    fill_force: tuple[bool, ...]  # replace the row even where an input has it

    @cached_property
    def tensors(self) -> tuple[torch.Tensor, ...]:
        """(take (n_inputs, n_tokens), fill_rows, fill_src, fill_src_row) as long tensors and
        fill_force as bool: what `apply_rows` indexes with."""
        import torch

        def long(a: array) -> torch.Tensor:
            return torch.frombuffer(a, dtype=torch.long).clone() if len(a) else \
                torch.empty(0, dtype=torch.long)

        return (torch.stack([long(a) for a in self.take]),
                *(torch.tensor(v, dtype=torch.long)
                  for v in (self.fill_rows, self.fill_src, self.fill_src_row)),
                torch.tensor(self.fill_force, dtype=torch.bool))


def plan_rows(vp: VocabPlan, models: list[str], name: str,
              in_rows: list[int]) -> tuple[VocabRows | None, list[str]]:
    """Row maps for tensor `name` whose inputs are `models` (with `in_rows` rows each).
    None when every input already is the output's layout."""
    take = tuple(vp.perms[m] for m in models)
    problems = [f"{name}: model {m} has {r} rows, but its tokenizer uses row {top}"
                for m, r, t in zip(models, in_rows, take) if (top := max(t, default=-1)) >= r]
    rows, src, src_row = _default_fills(take, models.index(vp.base) if vp.base in models
                                        else None)
    force = [False] * len(rows)
    configured = []
    for token, cfg in (vp.spec.tokens or {}).items():
        if cfg.source is not None:
            fill, why = _configured(vp, models, vp.out.tokens[token], token, cfg)
            problems += [f"{name}: {why}"] if why else []
            configured += [fill] if fill else []
    if configured:  # a configured token replaces its default fill
        done = {f[0] for f in configured}
        keep = [j for j, r in enumerate(rows) if r not in done]
        rows = [rows[j] for j in keep] + [f[0] for f in configured]
        src = [src[j] for j in keep] + [f[1] for f in configured]
        src_row = [src_row[j] for j in keep] + [f[2] for f in configured]
        force = [force[j] for j in keep] + [bool(f[3]) for f in configured]
    n = vp.out.n_tokens
    identity = not rows and vp.out.rows == n and all(r == n for r in in_rows)
    if identity:
        own = array("q", range(n))
        identity = all(t == own for t in take)
    vr = VocabRows(vp.out.rows, n, take, tuple(rows), tuple(src), tuple(src_row), tuple(force))
    return (None if identity else vr), problems


def _default_fills(take: tuple[array, ...], base: int | None
                   ) -> tuple[list[int], list[int], list[int]]:
    """mergekit's rule for each row some input lacks: the one input that has it, else the
    base when it has it, else the mean of those that have it; zeros when none has it.
    (rows, source, source row), rows ascending."""
    rows, src, src_row = [], [], []
    for i, col in enumerate(zip(*take)):
        if -1 not in col:  # every input has the token
            continue
        have = [r >= 0 for r in col]
        cnt = sum(have)
        if cnt == 0:
            s = ZERO
        elif cnt == 1:  # the lone donor
            s = have.index(True)
        elif base is not None and have[base]:
            s = base
        else:
            s = MEAN
        rows.append(i)
        src.append(s)
        src_row.append(col[s] if s >= 0 else 0)
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
    import torch

    takes, fill_rows, _, _, fill_force = vr.tensors
    defaults = _fill_values(vr, inputs)  # (n_fills, *row shape)
    out = []
    for k, t in enumerate(inputs):
        new = t.new_zeros((vr.rows, *t.shape[1:]))
        take = takes[k]
        have = torch.nonzero(take >= 0).flatten()
        new[have] = t[take[have]]
        if fill_rows.numel():
            use = fill_force | (take[fill_rows] < 0)
            new[fill_rows[use]] = defaults[use]
        if vr.rows > vr.n_tokens:  # padding rows: the mean embedding
            new[vr.n_tokens:] = torch.mean(new[:vr.n_tokens], dim=0)
        out.append(new)
    return out


def _fill_values(vr: VocabRows, inputs: list[torch.Tensor]) -> torch.Tensor:
    """The default row of every fill, one gather per input."""
    import torch

    takes, fill_rows, fill_src, fill_src_row, _ = vr.tensors
    like = inputs[0]
    values = like.new_zeros((fill_rows.numel(), *like.shape[1:]))
    for k, t in enumerate(inputs):
        j = torch.nonzero(fill_src == k).flatten()
        values[j] = t[fill_src_row[j]]
    mean = torch.nonzero(fill_src == MEAN).flatten()
    if mean.numel():
        rows = fill_rows[mean]
        acc = like.new_zeros((mean.numel(), *like.shape[1:]))
        count = torch.zeros(mean.numel(), dtype=torch.long)
        for k, t in enumerate(inputs):  # zero + row + row ..., in input order, as mergekit
            at = takes[k, rows]
            has = torch.nonzero(at >= 0).flatten()
            acc[has] = acc[has] + t[at[has]]
            count += (at >= 0).long()
        values[mean] = acc / count.to(acc.dtype).view(-1, *[1] * (acc.dim() - 1))
    return values
