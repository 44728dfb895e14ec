"""Multi-stage fuzzer: random multi-document recipes (stage names valid and path-like,
references to stages, inputs and nothing, cycles, self-references, non-mappings) run through
`kinmerge.merge` with random --stage, --intermediate-dir (fresh, an input, inside or holding
one, OUT, inside OUT, a user's folder) and --overwrite over an OUT that is absent, empty, a
previous model or a user's folder; and through kinmerge-multi's run (`run_all`: every stage,
with and without --out-path, lazy or not).

Whatever the input: the only exception out is a KinmergeError; no example runs past its time
limit (a hang fails the test instead of being waited on); and nothing outside OUT and the
given --intermediate-dir's stage folders is created or changed (the input models and a user's
folder beside them stay byte-identical, no temporary folder or lock file is left).

A second fuzzer draws stages taking their tokenizer (tokenizer_source, the `tokenizer:` block
and its tokens) from models with and without tokenizer files and from earlier stages: `plan`
and `merge` agree (the same error, or the planned shapes and config are the written ones),
and nothing written names a stage's temporary folder.

A few hundred examples in the default suite; thousands with KINMERGE_SLOW=1.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kinmerge
from kinmerge.core.multistage import run_all
from kinmerge.core.stages import NAME
from kinmerge.errors import KinmergeError
from kinmerge.zoo.synthetic import synthetic_llama

from fuzz_kit import limited

SLOW = os.environ.get("KINMERGE_SLOW") == "1"
EXAMPLES = 3000 if SLOW else 200
LIMIT_S = 20.0  # per example; a tiny merge takes milliseconds, a whole example well under 1 s
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not SLOW, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
GOOD = ["s1", "s2", "first-merge", "a.b_c", "ft1", "keep", "A"]
BAD = ["../keep", "../../keep", "/KEEP", "..", ".", "", "a/b", "x" * 70, "é", "-x", ".hid",
       "a b", "s1+x", "~", "C:\\x", "s1/../keep"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """models/{base,ft1,ft2}, a user's folder keep/, an empty working folder work/."""
    root = tmp_path_factory.mktemp("stage_fuzz")
    kw = dict(layers=2, hidden=8, intermediate=8, vocab=8, heads=2)
    base = synthetic_llama(root / "models" / "base", seed=0, **kw)
    for i in (1, 2):
        synthetic_llama(root / "models" / f"ft{i}", base=base, seed=i, delta=0.05, **kw)
    (root / "keep").mkdir()
    (root / "keep" / "precious.txt").write_text("the user's\n")
    (root / "work").mkdir()
    (root / "runs").mkdir()
    return root


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@st.composite
def documents(draw, root: Path) -> list:
    """Mostly plausible stage files (valid names, references to inputs and earlier stages),
    with path-like and junk names, dangling and cyclic references, non-mappings mixed in."""
    def name():  # hypothesis favours small integers: the plausible kinds come first
        kind = draw(st.integers(0, 29))
        return (draw(st.sampled_from(GOOD)) if kind < 21 else None if kind < 25 else
                draw(st.sampled_from(BAD)) if kind < 28 else draw(st.text(max_size=6))
                if kind == 28 else draw(st.integers(0, 3)))

    names = [name() for _ in range(draw(st.integers(1, 4)))]
    if draw(st.integers(0, 3)) < 3:  # mostly distinct names, now and then a duplicate
        names = list(dict.fromkeys(names)) if all(n.__hash__ for n in names) else names
    inputs = [str(root / "models" / m) for m in ("base", "ft1", "ft2", "ft1", "ft2")]
    docs: list = []
    for i, n in enumerate(names):
        if draw(st.integers(0, 39)) == 39:
            docs.append(draw(st.sampled_from(["just text", [1, 2], 3])))
            continue
        earlier = [x for x in names[:i] if isinstance(x, str)]
        anywhere = [x for x in names if isinstance(x, str)]
        ref = st.one_of(st.sampled_from(inputs), st.sampled_from(inputs),
                        st.sampled_from(earlier or inputs), st.sampled_from(earlier or inputs),
                        st.sampled_from(anywhere or ["s1"]),  # later stages: cycles
                        st.sampled_from(["nowhere", "../keep", str(root / "keep"),
                                         str(root / "models" / "missing")]))
        method = draw(st.sampled_from(["linear", "passthrough", "task_arithmetic"]))
        k = 1 if method == "passthrough" else draw(st.integers(1, 2))
        doc: dict = {} if n is None else {"name": n}
        doc |= {"merge_method": method, "dtype": "float32",
                "models": [{"model": draw(ref), "parameters": {"weight": 0.5}}
                           for _ in range(k)]}
        if method == "passthrough":
            doc["models"][0].pop("parameters")
        if method == "task_arithmetic":
            doc["base_model"] = draw(ref)
        docs.append(doc)
    return docs


def options(root: Path) -> st.SearchStrategy:
    inter = st.sampled_from([None] * 6 + ["fresh"] * 4 + [".", str(root / "models"),
                             str(root / "models" / "ft1"), str(root / "keep"),
                             str(root / "runs" / "out"), str(root / "runs" / "out" / "sub"),
                             str(root / "models" / "ft2" / "stages"), "../keep"])
    return st.fixed_dictionaries({
        "intermediate_dir": inter,
        "stage": st.sampled_from([None] * 12 + GOOD + ["nope", "../keep"]),
        "overwrite": st.booleans(),
        "out_state": st.sampled_from(["absent"] * 5 + ["empty", "model", "user"]),
        "runner": st.sampled_from(["merge"] * 3 + ["multi", "multi-no-out"]),
    })


def test_multistage_fuzz(sandbox):
    root = sandbox
    out = root / "runs" / "out"
    fresh = root / "runs" / "inter"

    @FUZZ
    @given(docs=documents(root), opt=options(root))
    def check(docs, opt):
        for p in (out, fresh):
            shutil.rmtree(p, ignore_errors=True)
        if opt["out_state"] != "absent":
            out.mkdir()
            if opt["out_state"] == "model":
                (out / "config.json").write_text("{}")
            elif opt["out_state"] == "user":
                (out / "notes").mkdir()
                (out / "notes" / "mine.txt").write_text("x")
        inter = fresh if opt["intermediate_dir"] == "fresh" else opt["intermediate_dir"]
        recipe = root / "runs" / "multi.yml"
        recipe.write_text(yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True))
        before = snapshot(root)
        cwd = os.getcwd()
        os.chdir(root / "work")
        try:
            with limited(LIMIT_S, "multi-stage example"):
                if opt["runner"] == "merge":
                    kinmerge.merge(recipe, out, stage=opt["stage"], intermediate_dir=inter,
                                   overwrite=opt["overwrite"], out_shard_size="5B")
                else:  # kinmerge-multi's run: every stage, into the intermediate folder
                    inter = inter if inter is not None else fresh
                    run_all(recipe, inter, out=out if opt["runner"] == "multi" else None,
                            overwrite=opt["overwrite"], lazy=opt["stage"] is None)
        except KinmergeError:
            pass
        finally:
            os.chdir(cwd)
        after = snapshot(root)
        # what may change: OUT, and the stage folders of a given --intermediate-dir
        allowed = [out]
        if inter is not None:
            d = Path(os.path.normpath(root / "work" / inter))
            names = [x.get("name") for x in docs if isinstance(x, dict)]
            allowed += [d / n for n in names if isinstance(n, str) and NAME.fullmatch(n)]
            if os.path.relpath(d, root) not in before:  # created by the run: all of it
                allowed.append(d)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        bad = [k for k in changed
               if not any(root / k == a or a in (root / k).parents for a in allowed)]
        assert not bad, (bad, docs, opt)
        # a created --intermediate-dir holds only stage folders, and no lock is left anywhere
        assert not [k for k in after if k.endswith(".kinmerge.lock") or ".kinmerge-" in k]

    check()


# --- tokenizers taken from earlier stages ----------------------------------------------------
# validate/plan read an earlier stage's tokenizer as the stage will write it: for any recipe,
# planning and merging agree (both refuse, with the same error, or the planned shapes and
# config are the written ones), and nothing written names a stage's temporary folder
TOK_EXAMPLES = 1500 if SLOW else 60
TOK_FUZZ = settings(FUZZ, max_examples=TOK_EXAMPLES)
TOKENS = ["<tool>", "<code>", "<new>", "<pad>"]
IN_VOCAB = ["<think>", "<code>", "<tool>", "a", "<nope>"]


@pytest.fixture(scope="module")
def tok_models(tmp_path_factory) -> dict[str, str]:
    """base (a character tokenizer), ft1 and ft2 (tokens added), bare (no tokenizer files)."""
    from kinmerge.zoo.tokenizer import VOCAB, save_tokenizer
    from kinmerge.zoo.vocab import with_added_tokens

    root = tmp_path_factory.mktemp("stage_tok_fuzz")
    kw = dict(layers=2, hidden=8, intermediate=8, heads=2, kv_heads=1, vocab=len(VOCAB))
    base = synthetic_llama(root / "base", seed=0, **kw)
    save_tokenizer(base)
    out = {"base": str(base), "bare": str(synthetic_llama(root / "bare", base=base, seed=9,
                                                          delta=0.05, **kw))}
    for i, (plain, special) in ((1, (["<tool>", "<think>"], ["<|im_end|>"])),
                                (2, (["<think>", "<code>"], []))):
        raw = synthetic_llama(root / f"raw{i}", base=base, seed=i, delta=0.05, **kw)
        save_tokenizer(raw)
        out[f"ft{i}"] = str(with_added_tokens(raw, root / f"ft{i}", plain, special=special,
                                              seed=i))
    return out


@st.composite
def tokenizer_documents(draw, models: dict[str, str]) -> list[dict]:
    """1 to 3 stages over models with and without tokenizers, each with no tokenizer
    setting, a tokenizer_source or a `tokenizer:` block whose sources are models, earlier
    stages, stages the recipe does not use, or nothing."""
    n = draw(st.integers(1, 3))
    names = ["A", "B", "C"][:n - 1] + [draw(st.sampled_from([None, "last"]))]
    docs = []
    for i, name in enumerate(names):
        pool = list(models.values()) + ["A", "B", "C"][:i]
        ref = st.sampled_from(pool)
        method = draw(st.sampled_from(["linear", "task_arithmetic", "passthrough"]))
        k = 1 if method == "passthrough" else draw(st.integers(1, 2))
        doc: dict = {} if name is None else {"name": name}
        doc |= {"merge_method": method, "dtype": "float32",
                "models": [{"model": draw(ref)} | ({} if method == "passthrough" else
                                                   {"parameters": {"weight": 0.5}})
                           for _ in range(k)]}
        if method == "task_arithmetic":
            doc["base_model"] = draw(ref)
        source = st.sampled_from(["base", "union"] + pool + ["A", "B"])
        kind = draw(st.integers(0, 4))
        if kind == 1:
            doc["tokenizer_source"] = draw(source)
        elif kind >= 2:
            block: dict = {} if draw(st.booleans()) else {"source": draw(source)}
            tokens = {}
            for tok in draw(st.lists(st.sampled_from(TOKENS), max_size=2, unique=True)):
                how = draw(st.integers(0, 3))
                tokens[tok] = ({"source": draw(ref)} if how == 0 else
                               {"source": {"kind": "model_token", "model": draw(ref),
                                           "token": draw(st.sampled_from(IN_VOCAB))}}
                               if how == 1 else {"source": {"kind": "zero"}} if how == 2
                               else {"force": True})
            if tokens:
                block["tokens"] = tokens
            if draw(st.booleans()):
                block["pad_to_multiple_of"] = draw(st.sampled_from([8, 64]))
            doc["tokenizer"] = block
        docs.append(doc)
    return docs


def test_multistage_tokenizer_fuzz(tok_models, tmp_path_factory):
    from safetensors import safe_open

    from kinmerge.core.merge import make_plans

    root = tmp_path_factory.mktemp("stage_tok_runs")
    out = root / "out"
    seen = {"merged": 0, "refused": 0}

    @TOK_FUZZ
    @given(docs=tokenizer_documents(tok_models))
    def check(docs):
        shutil.rmtree(out, ignore_errors=True)
        recipe = root / "multi.yml"
        recipe.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        planned = merged = None
        with limited(LIMIT_S, "multi-stage tokenizer example"):
            try:
                plans = make_plans(recipe)
            except KinmergeError as e:
                planned = str(e)
            try:
                kinmerge.merge(recipe, out)
            except KinmergeError as e:
                merged = str(e)
        assert planned == merged, docs  # both accept, or both refuse with the same error
        seen["refused" if merged is not None else "merged"] += 1
        if merged is not None:
            assert not out.exists()
            return
        p = plans[-1][1]
        with safe_open(out / "model.safetensors", "pt") as f:
            assert {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()} == {
                j.name: j.shape for j in p.jobs}, docs
        assert json.loads((out / "config.json").read_text()) == p.config
        leaks = [x.name for x in out.iterdir() if b"kinmerge-tmp" in x.read_bytes()]
        assert not leaks, (leaks, docs)
        assert not [x for x in root.iterdir() if x.name not in ("multi.yml", "out")]

    check()
    print(seen)
    assert min(seen.values()) >= TOK_EXAMPLES // 6, seen  # both sides of the agreement ran
