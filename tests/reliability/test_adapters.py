"""Issue 18 (adapters): adapter_config.json is read through one typed, bounded schema and the
factors are checked as peft checks them: each class of bad adapter gets one clear error,
through the API and the CLI (exit 2), with nothing written and no input changed. Ends with
a property-based fuzzer of the config and the factors."""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path

import pytest
import torch
from hypothesis import given, strategies as st
from safetensors.torch import save_file

import kinmerge
from kinmerge.errors import ConfigError, KinmergeError, ModelLoadError, UnsafeCheckpointError
from kinmerge.io.adapter_config import MAX_CONFIG_BYTES, MAX_RANK
from kinmerge.io.lora import LoraModelReader
from kinmerge.io.reader import ModelReader

from fuzz_kit import fuzz, time_limit
from inputs_kit import TINY, assert_clean_failure, cli, tiny  # noqa: F401
from payload_kit import FORMATS, Payload

Q = "model.layers.0.self_attn.q_proj"  # (8, 8) in the tiny model
A, B = f"{Q}.lora_A.weight", f"{Q}.lora_B.weight"
GOOD = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}


def adapter(d: Path, tensors: dict | None = None, raw_config: str | None = None,
            **cfg) -> Path:
    """A PEFT adapter folder: rank-2 q_proj factors unless `tensors`, GOOD's config + cfg."""
    d.mkdir(parents=True, exist_ok=True)
    if tensors is None:
        g = torch.Generator().manual_seed(0)
        tensors = {A: torch.randn(2, 8, generator=g), B: torch.randn(8, 2, generator=g)}
    (d / "adapter_config.json").write_text(raw_config if raw_config is not None
                                           else json.dumps({**GOOD, **cfg}))
    save_file({f"base_model.model.{k}": v for k, v in tensors.items()},
              d / "adapter_model.safetensors")
    return d


def digest(*folders: Path) -> str:
    """A hash of every file under the folders: inputs must come out unchanged."""
    h = hashlib.sha256()
    for folder in folders:
        for f in sorted(Path(folder).rglob("*")):
            if f.is_file():
                h.update(str(f).encode() + f.read_bytes())
    return h.hexdigest()


def refused(tiny, lora: Path, *texts: str, error=KinmergeError) -> KinmergeError:
    """The adapter is refused by the reader (texts in the message) and by `lora-merge`
    (exit 2, no OUT, inputs unchanged)."""
    before = digest(tiny["base"], lora)
    with pytest.raises(error) as e:
        LoraModelReader(f"{tiny['base']}+{lora}")
    for t in texts:
        assert t in str(e.value), (t, str(e.value))
    out = tiny["root"] / "out"
    assert_clean_failure(cli("lora-merge", f"{tiny['base']}+{lora}", out, "--no-progress"),
                         *texts[:1])
    assert not out.exists() and digest(tiny["base"], lora) == before
    return e.value


def test_a_good_adapter_merges(tiny):
    """The control: the same helper's adapter is accepted and gives W + (alpha/r) B A."""
    lora = adapter(tiny["root"] / "lora")
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 8, generator=g), torch.randn(8, 2, generator=g)
    got = LoraModelReader(f"{tiny['base']}+{lora}").get(f"{Q}.weight")
    assert torch.equal(got, ModelReader(tiny["base"]).get(f"{Q}.weight") + (b @ a) * 2.0)


@pytest.mark.parametrize("r, text", [
    (0, "r: Input should be greater than or equal to 1 (got 0)"),
    (-4, "r: Input should be greater than or equal to 1 (got -4)"),
    ("8", "r: Input should be a valid integer (got '8')"),
    (None, "r: Input should be a valid integer (got None)"),
    (2.5, "r: Input should be a valid integer (got 2.5)"),
    (True, "r: Input should be a valid integer (got True)"),
    (2**70, f"r: Input should be less than or equal to {MAX_RANK}"),
])
def test_bad_rank_is_one_config_error(tiny, r, text):
    e = refused(tiny, adapter(tiny["root"] / "lora", r=r, use_rslora=True), text,
                error=ConfigError)
    assert e.problems == [text] or e.problems[0].startswith(text)
    assert "adapter_config.json has 1 problem" in str(e)


@pytest.mark.parametrize("alpha, text", [
    ("8", "lora_alpha: Value error, must be a number, not str (got '8')"),
    (None, "lora_alpha: Value error, must be a number, not NoneType (got None)"),
    (True, "lora_alpha: Value error, must be a number, not bool (got True)"),
    (1e300, "lora_alpha: Input should be less than or equal to 1000000"),
])
def test_bad_alpha_is_one_config_error(tiny, alpha, text):
    refused(tiny, adapter(tiny["root"] / "lora", lora_alpha=alpha), text, error=ConfigError)


def test_nan_alpha_is_refused(tiny):
    raw = json.dumps(GOOD).replace('"lora_alpha": 4', '"lora_alpha": NaN')
    refused(tiny, adapter(tiny["root"] / "lora", raw_config=raw),
            "lora_alpha: Value error, must be a finite number (got nan)", error=ConfigError)


@pytest.mark.parametrize("key, value, text", [
    ("rank_pattern", ["q_proj", 2], "rank_pattern: Input should be a valid dictionary"),
    ("rank_pattern", {"q_proj": 0}, "rank_pattern.q_proj: Input should be greater than or "
                                    "equal to 1 (got 0)"),
    ("rank_pattern", {"q_proj(": 2}, "rank_pattern.q_proj( (a key): Value error, not a valid regular "
                                     "expression (missing ), unterminated subpattern"),
    ("alpha_pattern", {"[q": 2}, "alpha_pattern.[q (a key): Value error, not a valid regular "
                                 "expression (unterminated character set"),
    ("alpha_pattern", {"q_proj": "2"}, "alpha_pattern.q_proj"),
    ("rank_pattern", {"(\\w+)+x": 2}, "rank_pattern.(\\w+)+x (a key): Value error, a repetition "
                                      "inside a repetition (like `(a+)+`) can take exponential "
                                      "time to match"),
    ("rank_pattern", {"(\\w|\\w\\w)+x": 2}, "rank_pattern.(\\w|\\w\\w)+x (a key): Value error, "
                                          "alternatives inside a repetition that can match the "
                                          "same text (like `(\\w|\\w\\w)+`) can take "
                                          "exponential time to match"),
    ("alpha_pattern", {"(a.|.a)+x": 2}, "alpha_pattern.(a.|.a)+x (a key): Value error, "
                                        "alternatives inside a repetition"),
    ("target_modules", 5, "target_modules"),
    ("use_rslora", "yes", "use_rslora: Input should be a valid boolean (got 'yes')"),
])
def test_bad_patterns_and_flags_are_config_errors(tiny, key, value, text):
    refused(tiny, adapter(tiny["root"] / "lora", **{key: value}), text, error=ConfigError)


def test_every_config_problem_is_listed_at_once(tiny):
    e = refused(tiny, adapter(tiny["root"] / "lora", r=0, lora_alpha="x",
                              rank_pattern={"(": 1}), "adapter_config.json has 3 problems",
                error=ConfigError)
    assert [p.split(":")[0] for p in e.problems] == ["r", "lora_alpha", "rank_pattern.( (a key)"]


def test_declared_rank_must_match_the_factors(tiny):
    """peft refuses it; kinmerge used to rescale by the wrong r (or erase the adapter)."""
    refused(tiny, adapter(tiny["root"] / "lora", r=8),
            f"LoRA factors of {Q}: lora_A [2, 8] and lora_B [8, 2] do not both have the rank "
            "8 that adapter_config.json declares for this module (r or rank_pattern)",
            error=ModelLoadError)
    # rank_pattern is what counts for the module it matches
    ok = adapter(tiny["root"] / "ok", r=8, rank_pattern={"q_proj": 2})
    LoraModelReader(f"{tiny['base']}+{ok}")


def test_factors_of_different_ranks(tiny):
    refused(tiny, adapter(tiny["root"] / "lora", {A: torch.ones(2, 8), B: torch.ones(8, 3)}),
            "lora_A [2, 8] and lora_B [8, 3] do not both have the rank 2",
            error=ModelLoadError)


def test_factors_must_be_matrices(tiny):
    e = refused(tiny, adapter(tiny["root"] / "lora", {A: torch.ones(16), B: torch.ones(8, 2)}),
                f"LoRA factors of {Q}: factors must be 2-D matrices, got lora_A of shape [16] "
                "and lora_B of shape [8, 2]", error=ModelLoadError)
    assert e.where.endswith("adapter_model.safetensors")


def test_factors_that_do_not_fit_the_weight(tiny):
    e = refused(tiny, adapter(tiny["root"] / "lora", {A: torch.ones(2, 5), B: torch.ones(8, 2)}),
                f"the LoRA update of {Q}.weight (lora_B [8, 2] @ lora_A [2, 5] = [8, 5]) does "
                "not fit the weight's shape [8, 8]", error=ModelLoadError)
    assert e.where.endswith("adapter_model.safetensors")


def test_lora_a_without_lora_b(tiny):
    refused(tiny, adapter(tiny["root"] / "lora", {A: torch.ones(2, 8)}),
            f"LoRA factors of {Q}: base_model.model.{A} has no lora_B beside it",
            error=ModelLoadError)


def test_target_modules_the_file_lacks_are_a_warning(tiny, caplog):
    """Decided: a warning. peft accepts target lists some of whose names match nothing, so
    refusing would refuse adapters peft loads; the warning names what is missing."""
    lora = adapter(tiny["root"] / "lora", target_modules=["q_proj", "v_proj", "up_proj"])
    with caplog.at_level(logging.WARNING):
        LoraModelReader(f"{tiny['base']}+{lora}")
    assert ("target_modules name 2 module(s) the adapter holds no LoRA factors for: v_proj, "
            "up_proj") in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # the control: nothing missing, nothing said
        LoraModelReader(f"{tiny['base']}+{adapter(tiny['root'] / 'ok')}")
    assert "target_modules" not in caplog.text


@pytest.mark.parametrize("fmt", FORMATS)
def test_pickled_adapter_goes_through_the_pickle_refusal(tiny, tmp_path, monkeypatch, fmt):
    monkeypatch.chdir(tmp_path)
    lora = tiny["root"] / "lora"
    lora.mkdir()
    (lora / "adapter_config.json").write_text(json.dumps(GOOD))
    f = lora / "adapter_model.bin"
    if fmt == "torch-zip":
        torch.save({f"base_model.model.{A}": torch.ones(2, 8), "x": Payload()}, f)
    else:
        import pickle
        f.write_bytes(pickle.dumps({f"base_model.model.{A}": Payload()}))
    e = refused(tiny, lora, "refused to unpickle a checkpoint that holds more than plain "
                "tensors: loading it could run code", error=UnsafeCheckpointError)
    assert "weights_only" not in str(e) and e.where == str(f)
    assert not (tmp_path / "PWNED").exists()


def test_plain_tensor_adapter_bin_still_loads(tiny):
    """The control of the refusal: a weights-only adapter_model.bin merges."""
    lora = tiny["root"] / "lora"
    lora.mkdir()
    (lora / "adapter_config.json").write_text(json.dumps(GOOD))
    torch.save({f"base_model.model.{A}": torch.ones(2, 8),
                f"base_model.model.{B}": torch.ones(8, 2)}, lora / "adapter_model.bin")
    got = LoraModelReader(f"{tiny['base']}+{lora}").get(f"{Q}.weight")
    assert torch.equal(got, ModelReader(tiny["base"]).get(f"{Q}.weight") + 2 * 2.0)


@pytest.mark.parametrize("how, text", [
    ("huge", f"more than the {MAX_CONFIG_BYTES} an adapter config may have"),
    ("latin1", "adapter_config.json is not valid UTF-8 JSON"),
    ("deep", "adapter_config.json is not valid UTF-8 JSON: nested too deeply"),
    ("list", "adapter_config.json is not a JSON object"),
    ("fifo", "adapter_config.json is a FIFO (named pipe), not a regular file"),
])
def test_config_file_itself_is_bounded(tiny, how, text):
    lora = adapter(tiny["root"] / "lora")
    f = lora / "adapter_config.json"
    if how == "huge":
        f.write_text(json.dumps({**GOOD, "pad": "x" * MAX_CONFIG_BYTES}))
    elif how == "latin1":
        f.write_bytes(b'{"r": 2, "note": "caf\xe9"}')
    elif how == "deep":
        f.write_text("[" * 100_000 + "]" * 100_000)
    elif how == "list":
        f.write_text("[1, 2]")
    else:
        f.unlink()
        os.mkfifo(f)
    with pytest.raises(ModelLoadError) as e:
        LoraModelReader(f"{tiny['base']}+{lora}")
    assert text in str(e.value)


# --- the fuzzer: random configs and factors -------------------------------------------------

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                        st.sampled_from([0, 1, 2, 4, 8, -1, 0.5, "q_proj", "(", ".*"]))
junk = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)
patterns = st.dictionaries(st.one_of(st.sampled_from(["q_proj", "self_attn.q_proj", ".*",
                                                       "(", "[", "q_proj|v_proj", "\\"]),
                                     st.text(max_size=5)),
                           st.one_of(st.integers(-2, 9), json_scalar), max_size=3)
hostile_configs = st.fixed_dictionaries({}, optional={
    "peft_type": st.sampled_from(["LORA", "LORA", "IA3", 3]),
    "r": st.one_of(st.integers(-2, 9), json_scalar), "lora_alpha": json_scalar,
    "use_rslora": st.one_of(st.booleans(), json_scalar), "use_dora": st.booleans(),
    "fan_in_fan_out": st.one_of(st.booleans(), json_scalar),
    "rank_pattern": st.one_of(patterns, junk), "alpha_pattern": st.one_of(patterns, junk),
    "target_modules": st.one_of(st.lists(st.sampled_from(["q_proj", "v_proj", "x"])), junk),
    "modules_to_save": st.one_of(st.none(), st.lists(st.text(max_size=5)), junk)})
rank = st.sampled_from([1, 2, 4])
plausible_configs = st.fixed_dictionaries(
    {"r": rank, "lora_alpha": st.one_of(st.integers(-16, 64), st.floats(-1e6, 1e6))},
    optional={"use_rslora": st.booleans(), "fan_in_fan_out": st.booleans(),
              "rank_pattern": st.dictionaries(st.sampled_from(["q_proj", "self_attn.q_proj",
                                                               "v_proj", "layers.0.*"]),
                                              rank, max_size=2),
              "alpha_pattern": st.dictionaries(st.sampled_from(["q_proj", "k_proj"]),
                                               st.floats(-100, 100), max_size=2),
              "target_modules": st.lists(st.sampled_from(["q_proj", "v_proj"]), max_size=2)})
configs = st.one_of(plausible_configs, plausible_configs, hostile_configs)
dims = st.lists(st.integers(0, 9), min_size=0, max_size=3)
near = st.one_of(rank.map(lambda k: {"a": [k, 8], "b": [8, k]}),  # right, if r agrees
                 st.tuples(rank, rank).map(lambda k: {"a": [k[0], 8], "b": [8, k[1]]}))
factors = st.one_of(near, near, st.fixed_dictionaries(
    {"a": dims, "b": dims}, optional={"bias": dims, "drop_b": st.booleans()}))


@fuzz(200, 3000)
@given(cfg=configs, shapes=factors,
       raw=st.one_of(st.none(), st.none(), st.none(), st.binary(max_size=40)))
@time_limit()
def test_fuzz_adapter_config_and_factors(fuzz_base, tmp_path_factory, cfg, shapes, raw):
    """Whatever the config and the factors' shapes: a KinmergeError, or an adapter whose
    merged q_proj is finite and equals W + scale * B @ A (nothing absurd accepted)."""
    lora = tmp_path_factory.mktemp("fz")
    tensors = {A: torch.ones(shapes["a"]) * 0.1}
    if not shapes.get("drop_b"):
        tensors[B] = torch.ones(shapes["b"]) * 0.1
    if "bias" in shapes:
        tensors[f"{Q}.lora_B.bias"] = torch.ones(shapes["bias"])
    save_file({f"base_model.model.{k}": v for k, v in tensors.items()},
              lora / "adapter_model.safetensors")
    text = json.dumps(cfg) if raw is None else raw.decode("latin-1")
    (lora / "adapter_config.json").write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        r = LoraModelReader(f"{fuzz_base}+{lora}")
        got = r.get(f"{Q}.weight")
    except KinmergeError as e:
        assert str(e)
        return
    pair = r.adapter.pairs[f"{Q}.weight"]
    assert torch.isfinite(got).all() and math.isfinite(pair.scale)
    assert tuple(shapes["a"])[0] == tuple(shapes["b"])[1]  # the rank was checked
    w = ModelReader(fuzz_base).get(f"{Q}.weight")
    delta = tensors[B] @ tensors[A]
    if r.adapter.fan_in_fan_out:
        delta = delta.T
    torch.testing.assert_close(got, w + pair.scale * delta)


@pytest.fixture(scope="module")
def fuzz_base(tmp_path_factory):
    from kinmerge.zoo.synthetic import synthetic_llama
    return synthetic_llama(tmp_path_factory.mktemp("fzbase") / "base", seed=0, **TINY)


def test_fuzz_limit_counts_a_hang_as_a_failure():
    """The control of the per-case limit: a body that sleeps past it fails, promptly."""
    import time
    from fuzz_kit import CaseTimeout, limited
    t = time.perf_counter()
    with pytest.raises(CaseTimeout, match="ran past its 0.2 s limit"):
        with limited(0.2, "sleeper"):
            time.sleep(5)
    assert time.perf_counter() - t < 2


@pytest.mark.parametrize("pattern", [r"(up|down)+_proj", r"(q|k|v)_proj", r".*\.(q|v)_proj",
                                     r"model\.layers\.(0|1|2)\..*", r"(?:ab|ac)*x",
                                     r"^(?!.*mlp).*$"])
def test_plain_alternatives_are_accepted_and_match_fast(pattern):
    """Alternatives told apart by their first character cannot match one text two ways:
    accepted, and matching a long near-miss takes no time."""
    import re
    import time

    from kinmerge.io.adapter_config import _regex

    assert _regex(pattern) == pattern
    t0 = time.perf_counter()
    re.match(rf"(.*\.)?({pattern})$", "up" * 500 + "ab" * 500 + "a" * 200 + "!")
    assert time.perf_counter() - t0 < 1.0
