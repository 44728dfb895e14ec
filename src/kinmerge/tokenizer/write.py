"""The output tokenizer: the source model's tokenizer files plus the tokens the plan appends.

Files are copied from the source model; when tokens are appended, `tokenizer.json` is
rewritten through the `tokenizers` library (each new token an added token with the settings
it had in the model it came from) and a `added_tokens_decoder` in `tokenizer_config.json`
(transformers 4's format) gains the same entries, so `AutoTokenizer.from_pretrained` loads
the vocabulary the merged embedding rows follow.
"""
from __future__ import annotations

import json
from pathlib import Path

from kinmerge.errors import KinmergeError
from kinmerge.tokenizer.build import VocabPlan
from kinmerge.tokenizer.vocab import AddedSpec, load_backend


def write_appended(vp: VocabPlan, src_dir: Path, out: Path) -> None:
    """Add the plan's appended tokens to the tokenizer copied from `src_dir` into `out`."""
    if not vp.out.appended:
        return
    from tokenizers import AddedToken

    tok = load_backend(src_dir)
    for a in vp.out.appended:
        tok.add_tokens([AddedToken(a.content, single_word=a.single_word, lstrip=a.lstrip,
                                   rstrip=a.rstrip, normalized=a.normalized, special=a.special)])
    got = tok.get_vocab(with_added_tokens=True)
    wrong = [a.content for a in vp.out.appended if got.get(a.content) != vp.out.tokens[a.content]]
    if wrong:  # the tokenizer numbered them differently from the embedding rows: never ship it
        raise KinmergeError(
            f"the output tokenizer gives {len(wrong)} new token(s) other ids than the merged "
            f"embedding rows (first: {wrong[0]!r})", where=f"tokenizer of {vp.out.source}",
            fix="report this with the models' tokenizer.json files")
    tok.save(str(out / "tokenizer.json"))
    _patch_config(out / "tokenizer_config.json", vp)


def _patch_config(path: Path, vp: VocabPlan) -> None:
    if not path.is_file():
        return
    cfg = json.loads(path.read_text())
    decoder = cfg.get("added_tokens_decoder")
    if not isinstance(decoder, dict):
        return
    for a in vp.out.appended:
        decoder[str(vp.out.tokens[a.content])] = _entry(a)
    path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


def _entry(a: AddedSpec) -> dict:
    return {"content": a.content, "lstrip": a.lstrip, "normalized": a.normalized,
            "rstrip": a.rstrip, "single_word": a.single_word, "special": a.special}
