"""`chat_template:` in a recipe: a format's name, `auto`, or a Jinja template of one's own.

mergekit 0.1.5 knows five format names (alpaca, chatml, exaone, llama3, mistral); a recipe
that names one gets that format's template in the output's `chat_template.jinja`. The texts
below are kinmerge's own, written from each format's published description; they render every
conversation as mergekit's do (tests/tokenizer/test_chat_templates.py holds the expected
renderings). `auto` takes the template most of the input models' tokenizers carry (the first
listed among equals), none when no input has one. Any other value must be a Jinja template:
a short word without `{` is refused (mergekit fails on it after the merge), so a typo such as
`chatlm` is caught before any tensor is read.
"""
from __future__ import annotations

import difflib
import json
from collections import Counter
from pathlib import Path

MAX_TEMPLATE = 256 * 1024  # characters: a chat template is source code, not data

# ChatML (OpenAI's chat markup): each message is <|im_start|>ROLE, a newline, its content,
# <|im_end|> and a newline; the generation prompt opens an assistant turn.
CHATML = (
    "{%- for message in messages -%}\n"
    "{{- '<|im_start|>' ~ message['role'] ~ '\\n' ~ message['content'] ~ '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}\n")

# Llama 3 (Meta's prompt format): <|begin_of_text|> (the tokenizer's BOS) once, then per message
# a role header, a blank line, the trimmed content and <|eot_id|> (and a newline, which
# mergekit's template leaves after each message).
LLAMA3 = (
    "{%- for message in messages -%}\n"
    "{%- if loop.first -%}{{- bos_token -}}{%- endif -%}\n"
    "{{- '<|start_header_id|>' ~ message['role'] ~ '<|end_header_id|>\\n\\n' -}}\n"
    "{{- message['content'] | trim -}}{{- '<|eot_id|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}\n")

# Mistral instruct ([INST] ... [/INST]): BOS, then user turns in [INST] tags and assistant turns
# followed by EOS, strictly alternating; an opening system message is put before the first
# user message, separated by a blank line.
MISTRAL = (
    "{%- set has_system = messages and messages[0]['role'] == 'system' -%}\n"
    "{%- set turns = messages[1:] if has_system else messages -%}\n"
    "{{- bos_token -}}\n"
    "{%- for turn in turns -%}\n"
    "{%- set expect_user = loop.index0 is even -%}\n"
    "{%- if (turn['role'] == 'user') != expect_user -%}"
    "{{- raise_exception('After the optional system message, conversation roles must "
    "alternate user/assistant/user/assistant/...') -}}{%- endif -%}\n"
    "{%- if turn['role'] == 'user' -%}\n"
    "{%- set text = messages[0]['content'] ~ '\\n\\n' ~ turn['content'] "
    "if (loop.first and has_system) else turn['content'] -%}\n"
    "{{- ' [INST] ' ~ text ~ ' [/INST]' -}}\n"
    "{%- elif turn['role'] == 'assistant' -%}{{- ' ' ~ turn['content'] ~ eos_token -}}\n"
    "{%- else -%}{{- raise_exception('Only user and assistant roles are supported, with the "
    "exception of an initial optional system message!') -}}{%- endif -%}\n"
    "{%- endfor -%}\n")

# Alpaca (Stanford's instruction format): the last system message's text, a blank line, then
# "### Instruction:", "### Input:" (role user_context) and "### Response:" sections, each
# heading on its own line above the trimmed text, sections separated by blank lines.
ALPACA = (
    "{%- set systems = messages | selectattr('role', 'equalto', 'system') | list -%}\n"
    "{{- (systems | last)['content'] | trim if systems else '' -}}{{- '\\n\\n' -}}\n"
    "{%- set heading = {'user': '### Instruction:', 'assistant': '### Response:', "
    "'user_context': '### Input:'} -%}\n"
    "{%- for message in messages -%}\n"
    "{%- if message['role'] in heading -%}\n"
    "{{- heading[message['role']] ~ '\\n' ~ (message['content'] | trim) -}}\n"
    "{%- if not loop.last -%}{{- '\\n\\n' -}}{%- endif -%}\n"
    "{%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt and messages[-1]['role'] != 'assistant' -%}"
    "{{- '### Response:\\n' -}}{%- endif -%}\n")

# EXAONE (LG AI Research): each message as [|ROLE|] and its content, a user message ended by a
# newline and any other by [|endofturn|] and a newline; a conversation that does not open with
# a system message gets an empty one. Written out with the indentation mergekit's template
# leaves in its rendering (4 spaces before a turn, 8 before its end), so the two render alike.
EXAONE = (
    "{%- for message in messages -%}\n"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{- '        [|system|][|endofturn|]\\n\\n' -}}{%- endif -%}\n"
    "{{- '    [|' ~ message['role'] ~ '|]' ~ message['content'] ~ '\\n        ' -}}\n"
    "{{- ('\\n' if message['role'] == 'user' else '[|endofturn|]\\n') ~ '\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- '    [|assistant|]\\n' -}}{%- endif -%}\n")

BUILTIN: dict[str, str] = {"alpaca": ALPACA, "chatml": CHATML, "exaone": EXAONE,
                           "llama3": LLAMA3, "mistral": MISTRAL}


def template_problem(value: str) -> str | None:
    """What is wrong with a recipe's `chat_template` value (None: nothing)."""
    if len(value) > MAX_TEMPLATE:
        return (f"chat_template: {len(value)} characters, more than {MAX_TEMPLATE}: "
                "give a chat template's Jinja source, or a format's name")
    if value in BUILTIN or value == "auto" or is_jinja(value):
        return None
    close = difflib.get_close_matches(value, [*BUILTIN, "auto"], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"chat_template: {value[:60]!r}{hint} is neither a known format "
            f"({', '.join(sorted(BUILTIN))}), nor 'auto' (the input models' most common "
            "template), nor a Jinja template (which has '{' in it and is at least 20 "
            "characters long)")


def is_jinja(value: str) -> bool:
    """Taken as a template's source, as mergekit takes it: 20 characters or more, with `{`."""
    return len(value) >= 20 and "{" in value


def model_template(model_dir: str | Path) -> str | None:
    """The chat template a model's tokenizer carries (chat_template.jinja, else the
    tokenizer_config.json key), stripped; None where it has none."""
    from kinmerge.errors import ModelLoadError
    from kinmerge.io.model_json import MAX_JSON
    from kinmerge.io.safe_path import read_bounded

    model_dir = Path(model_dir)
    raw = read_bounded(model_dir, "chat_template.jinja", max_bytes=4 * MAX_TEMPLATE)
    if raw is not None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ModelLoadError(f"chat_template.jinja is not UTF-8 text (byte {e.start})",
                                 where=str(model_dir / "chat_template.jinja"),
                                 fix="save the template as UTF-8, or remove the file") from None
    else:
        raw = read_bounded(model_dir, "tokenizer_config.json", max_bytes=MAX_JSON)
        try:  # a config that is not JSON carries no template (as before it was bounded)
            cfg = json.loads(raw.decode("utf-8")) if raw is not None else None
        except (ValueError, RecursionError):
            return None
        text = cfg.get("chat_template") if isinstance(cfg, dict) else None
        if isinstance(text, dict):  # the named-templates form: its default
            text = text.get("default")
        if isinstance(text, list):  # [{"name": ..., "template": ...}, ...]
            text = next((t.get("template") for t in text
                         if isinstance(t, dict) and t.get("name") == "default"), None)
    return text.strip() if isinstance(text, str) and text.strip() else None


def resolve(value: str | None, model_dirs: list[str | Path]) -> str | None:
    """The template text to write for a recipe's `chat_template` (None: write none).

    `model_dirs`: the input models in recipe order (base first), for `auto`."""
    if not value:
        return None
    if value == "auto":
        found = [t for t in (model_template(d) for d in model_dirs) if t]
        return Counter(found).most_common(1)[0][0] if found else None
    return BUILTIN.get(value, value)
