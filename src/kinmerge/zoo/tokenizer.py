"""The zoo's character-level tokenizer: one token per character, saved with each model.

It is a `tokenizers` WordLevel model over single characters wrapped in
`PreTrainedTokenizerFast`, so `AutoTokenizer.from_pretrained(model_dir)` loads it offline.
Encoding adds `<s>` in front; decoding joins characters without spaces.
"""
from __future__ import annotations

import string
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SPECIALS = (PAD, BOS, EOS)
CHARS = string.digits + string.ascii_lowercase + string.ascii_uppercase + "+=-,:|"
VOCAB: dict[str, int] = {t: i for i, t in enumerate(SPECIALS + tuple(CHARS))}
PAD_ID, BOS_ID, EOS_ID = (VOCAB[t] for t in SPECIALS)


def char_tokenizer() -> PreTrainedTokenizerFast:
    """The tokenizer object (left padding, for batched generation)."""
    tok = Tokenizer(models.WordLevel(vocab=VOCAB, unk_token=PAD))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, BOS_ID)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS,
                                   pad_token=PAD, unk_token=PAD, padding_side="left")


def save_tokenizer(out: Path) -> None:
    char_tokenizer().save_pretrained(str(out))


def encode(text: str) -> list[int]:
    """Token ids of `text` without `<s>` (fast path for training; same ids as the tokenizer)."""
    return [VOCAB[c] for c in text]
