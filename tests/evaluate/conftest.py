"""Models whose outputs are known by hand, and a tiny trained zoo, for the evaluator tests."""
from __future__ import annotations

import math

import pytest
import torch

from kinmerge.zoo.tokenizer import VOCAB, save_tokenizer


def constant_llama(out, token: str, logit: float):
    """A Llama that ignores its input: every position gives `token` logit `logit`, others 0.

    Embeddings are all ones and the attention and MLP outputs are zero, so the last hidden
    state is ones / sqrt(1 + eps) everywhere; lm_head has one non-zero row. Hence
    p(token) = e^logit / (e^logit + V - 1) at every position, and greedy decoding repeats it.
    """
    from transformers import LlamaConfig, LlamaForCausalLM
    from kinmerge.zoo.tokenizer import BOS_ID, EOS_ID, PAD_ID
    cfg = LlamaConfig(vocab_size=len(VOCAB), hidden_size=8, intermediate_size=8,
                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=64, rms_norm_eps=0.0, tie_word_embeddings=False,
                      bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID)
    m = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.zero_()
            if "norm" in name or "embed" in name:
                p.fill_(1.0)
        m.lm_head.weight[VOCAB[token]] = logit / 8  # dot with ones(8) gives `logit`
    m.save_pretrained(out)
    save_tokenizer(out)
    return out


@pytest.fixture(scope="session")
def sevens(tmp_path_factory):
    """A model that says 7 forever, with p(7) = 3 / (3 + V - 1)."""
    return constant_llama(tmp_path_factory.mktemp("sevens") / "m", "7", math.log(3.0))


@pytest.fixture(scope="session")
def random_llama(tmp_path_factory):
    """A randomly initialised Llama (its greedy outputs depend on the prompt)."""
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(VOCAB), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=64, tie_word_embeddings=False, initializer_range=0.5,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0)
    out = tmp_path_factory.mktemp("random") / "m"
    LlamaForCausalLM(cfg).save_pretrained(out)
    save_tokenizer(out)
    return out


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    from kinmerge.zoo import ZooConfig, zoo
    return zoo(ZooConfig.tiny(), seed=0, cache=tmp_path_factory.mktemp("zoo") / "tiny")
