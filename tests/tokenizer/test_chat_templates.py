"""`chat_template:` by a format's name, `auto`, or Jinja source: what the output carries, what
it renders, and what is refused before any tensor is read.

The expected renderings are each format's published layout for one conversation (system,
user, assistant, user, then the generation prompt); mergekit 0.1.5's own templates render the
same strings (checked against them when kinmerge's were written, for 10 conversations with and
without the generation prompt, the role errors of the mistral format included).
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

import kinmerge
from kinmerge.errors import RecipeError
from kinmerge.tokenizer import chat
from kinmerge.zoo.synthetic import synthetic_llama
from kinmerge.zoo.tokenizer import char_tokenizer, save_tokenizer

CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "2+2?"}]
EXPECTED = {  # bos "<s>", eos "</s>" (the test tokenizer's)
    "chatml": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
              "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
              "<|im_start|>assistant\n",
    "llama3": "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>\n"
              "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\n"
              "<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>\n"
              "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>\n"
              "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "mistral": "<s> [INST] Be brief.\n\nHi [/INST] Hello</s> [INST] 2+2? [/INST]",
    "alpaca": "Be brief.\n\n### Instruction:\nHi\n\n### Response:\nHello\n\n"
              "### Instruction:\n2+2?### Response:\n",
    "exaone": "    [|system|]Be brief.\n        [|endofturn|]\n\n    [|user|]Hi\n        \n\n"
              "    [|assistant|]Hello\n        [|endofturn|]\n\n    [|user|]2+2?\n        \n\n"
              "    [|assistant|]\n",
}


def render(template: str, messages=CONVERSATION, generation: bool = True) -> str:
    return char_tokenizer().apply_chat_template(messages, chat_template=template,
                                                tokenize=False,
                                                add_generation_prompt=generation)


@pytest.mark.parametrize("name", sorted(chat.BUILTIN))
def test_each_format_renders_its_layout(name):
    assert set(EXPECTED) == set(chat.BUILTIN)
    assert render(chat.BUILTIN[name]) == EXPECTED[name]


def test_mistral_refuses_roles_out_of_turn():
    with pytest.raises(Exception, match="roles must alternate user/assistant"):
        render(chat.MISTRAL, [{"role": "assistant", "content": "x"}])
    with pytest.raises(Exception, match="Only user and assistant roles are supported"):
        render(chat.MISTRAL, [{"role": "user", "content": "x"}, {"role": "tool", "content": "y"}])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Three models with the test tokenizer; b and c carry the same template, a another."""
    root = tmp_path_factory.mktemp("chat")
    vocab = len(char_tokenizer().get_vocab())
    out = {}
    for i, name in enumerate("abc"):
        d = synthetic_llama(root / name, layers=1, hidden=8, intermediate=8, vocab=vocab, seed=i)
        tok = char_tokenizer()
        tok.chat_template = ("{% for m in messages %}" + ("A" if name == "a" else "BC")
                             + "{{ m['content'] }}{% endfor %}")
        tok.save_pretrained(str(d))
        out[name] = str(d)
    plain = synthetic_llama(root / "plain", layers=1, hidden=8, intermediate=8, vocab=vocab)
    save_tokenizer(plain)
    out["plain"] = str(plain)
    return out


def merge(models, tmp_path, names, template, out="out"):
    recipe = {"merge_method": "linear", "chat_template": template,
              "models": [{"model": models[n], "parameters": {"weight": 1.0}} for n in names]}
    return kinmerge.merge(recipe, tmp_path / out)


def test_a_format_name_is_expanded_and_loads(models, tmp_path):
    out = merge(models, tmp_path, "ab", "chatml")
    assert (out / "chat_template.jinja").read_text() == chat.CHATML
    assert render(AutoTokenizer.from_pretrained(str(out)).chat_template) == EXPECTED["chatml"]


def test_auto_takes_the_most_common_template(models, tmp_path):
    out = merge(models, tmp_path, "abc", "auto")  # b and c agree, a differs: b's wins
    assert chat.model_template(out) == chat.model_template(models["b"])
    assert "BC" in (out / "chat_template.jinja").read_text()
    # equally common: the first listed (mergekit's pick among equals follows its set order)
    assert chat.resolve("auto", [Path(models["a"]), Path(models["b"])]) == \
        chat.model_template(Path(models["a"]))
    # no input carries one: none is written
    out = merge(models, tmp_path, ["plain"], "auto", "out2")
    assert not (out / "chat_template.jinja").exists()
    assert chat.model_template(out) is None


def test_own_jinja_is_written_as_given(models, tmp_path):
    mine = "{% for m in messages %}<<{{ m['content'] }}>>{% endfor %}"
    out = merge(models, tmp_path, "ab", mine)
    assert (out / "chat_template.jinja").read_text() == mine


@pytest.mark.parametrize("bad, said", [
    ("chatlm", "'chatlm' (did you mean 'chatml'?) is neither a known format"),
    ("{{ short }}", "'{{ short }}' is neither a known format"),
    ("a" * (chat.MAX_TEMPLATE + 1), f"more than {chat.MAX_TEMPLATE}"),
])
def test_a_bad_value_is_refused_before_any_tensor(models, tmp_path, bad, said):
    with pytest.raises(RecipeError) as e:
        merge(models, tmp_path, "ab", bad)
    assert said in str(e.value)
    assert "alpaca, chatml, exaone, llama3, mistral" in str(e.value) or "more than" in str(e.value)
    assert not (tmp_path / "out").exists()


@settings(max_examples=300, deadline=datetime.timedelta(seconds=2), derandomize=True)
@given(st.one_of(st.text(max_size=80), st.sampled_from([*chat.BUILTIN, "auto", "ChatML", ""]),
                 st.text(alphabet="{}% ab\n", min_size=15, max_size=40)))
def test_fuzz_template_values(value):
    """Any string: a problem or none, never an exception; accepted means written as resolved."""
    problem = chat.template_problem(value)
    accepted = value in chat.BUILTIN or value == "auto" or (len(value) >= 20 and "{" in value)
    assert (problem is None) == accepted
    if problem:
        assert problem.startswith("chat_template: ") and "known format" in problem
    elif value != "auto":
        assert chat.resolve(value, []) == chat.BUILTIN.get(value, value)


def test_model_template_reads_every_stored_form(tmp_path):
    cfg = tmp_path / "tokenizer_config.json"
    assert chat.model_template(tmp_path) is None
    for stored, want in [("{{ x }} plain template", "{{ x }} plain template"),
                         ({"default": " {{ d }} ", "tool_use": "t"}, "{{ d }}"),
                         ([{"name": "tool_use", "template": "t"},
                           {"name": "default", "template": "{{ l }}"}], "{{ l }}"),
                         (42, None), ("   ", None)]:
        cfg.write_text(json.dumps({"chat_template": stored}))
        assert chat.model_template(tmp_path) == want
    (tmp_path / "chat_template.jinja").write_text("{{ file }}\n")  # the file wins
    assert chat.model_template(tmp_path) == "{{ file }}"
    cfg.write_text("not json")
    (tmp_path / "chat_template.jinja").unlink()
    assert chat.model_template(tmp_path) is None
