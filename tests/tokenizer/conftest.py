"""A base with the zoo's character tokenizer and two fine-tunes that added tokens."""
from __future__ import annotations

import pytest

from kinmerge.zoo.synthetic import synthetic_llama
from kinmerge.zoo.tokenizer import VOCAB, save_tokenizer
from kinmerge.zoo.vocab import with_added_tokens

TINY = dict(layers=2, hidden=8, intermediate=8, heads=2, kv_heads=1)
V = len(VOCAB)  # 71 characters and specials


@pytest.fixture(scope="session")
def added(tmp_path_factory):
    """base (71 tokens); ft1 adds <tool>, <think>, special <|im_end|> (74); ft2 adds <think>,
    <code> (73)."""
    root = tmp_path_factory.mktemp("added")
    base = synthetic_llama(root / "base", vocab=V, seed=0, **TINY)
    save_tokenizer(base)
    out = {"base": str(base), "root": root}
    for i, (plain, special) in ((1, (["<tool>", "<think>"], ["<|im_end|>"])),
                                (2, (["<think>", "<code>"], []))):
        raw = synthetic_llama(root / f"raw{i}", vocab=V, seed=i, base=base, delta=0.05, **TINY)
        save_tokenizer(raw)
        out[f"ft{i}"] = str(with_added_tokens(raw, root / f"ft{i}", plain, special=special,
                                              seed=i))
    return out
