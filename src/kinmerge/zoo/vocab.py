"""Fine-tunes that added tokens: the case `tokenizer_source` exists for.

`with_added_tokens` copies a model directory that has a tokenizer, adds tokens to its
tokenizer the way a fine-tuning script does (`tokenizer.add_tokens`, special or not), and
grows `embed_tokens` and `lm_head` by one row per new token, so config, tokenizer and
tensors stay consistent and `transformers` loads the result.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from kinmerge.io.reader import ModelReader
from kinmerge.seeds import tensor_seed

VOCAB_TENSORS = ("model.embed_tokens.weight", "lm_head.weight")


def with_added_tokens(src: str | Path, out: str | Path, tokens: list[str], *,
                      special: list[str] = (), seed: int = 0, scale: float = 0.25) -> Path:
    """A copy of model `src` whose tokenizer and vocabulary tensors gained `tokens` (plain
    added tokens) then `special` (special added tokens), each row random (N(0, scale²)).

    >>> with_added_tokens("zoo/base", "zoo/ft-tools", ["<tool>"], special=["<|im_end|>"])  # doctest: +SKIP
    """
    from transformers import AutoTokenizer

    src, out = Path(src), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(str(src))
    if tokens:
        tok.add_tokens(list(tokens))
    if special:
        tok.add_tokens(list(special), special_tokens=True)
    tok.save_pretrained(str(out))
    n = len(tok)
    with ModelReader(src) as r:
        tensors = {name: r.get(name) for name in r.names()}
        config = dict(r.config)
    for name in VOCAB_TENSORS:
        if name in tensors:
            tensors[name] = _grow(tensors[name], n, tensor_seed(seed, name), scale)
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    config["vocab_size"] = n
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for f in ("generation_config.json",):
        if (src / f).exists():
            shutil.copy2(src / f, out / f)
    return out


def _grow(t: torch.Tensor, rows: int, seed: int, scale: float) -> torch.Tensor:
    if t.shape[0] >= rows:
        return t[:rows].clone()
    g = torch.Generator().manual_seed(seed)
    extra = scale * torch.randn((rows - t.shape[0], *t.shape[1:]), generator=g)
    return torch.cat([t, extra.to(t.dtype)])
