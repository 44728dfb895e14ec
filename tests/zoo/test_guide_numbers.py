"""The zoo guide's numbers about the shipped zoo and the kin preset are the code's and the
artifact's: its size, shape, parameter count, training schedules and the bars `zoo check`
applies. (Its measured scores and kinship are a generated block: tests/test_bench_docs.py.)"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from safetensors import safe_open

from kinmerge.zoo.family import ZooConfig
from kinmerge.zoo.properties import KIN_BASE_MAX, KIN_EXPERT_MIN, KIN_MERGED_MIN, KIN_WEIGHT
from kinmerge.zoo.tokenizer import VOCAB

ROOT = Path(__file__).parents[2]
DATA = ROOT / "src" / "kinmerge" / "zoo" / "data"
GUIDE = " ".join((ROOT / "docs" / "guides" / "zoo.md").read_text().split())


def _e(x: float) -> str:
    """3e-3, 5e-4: the guide's spelling of a learning rate."""
    m, e = f"{x:.0e}".split("e")
    return f"{m}e{int(e)}"


def test_the_shipped_zoo_as_the_guide_describes_it():
    meta = json.loads((DATA / "zoo-v1.json").read_text())
    c = meta["config"]
    size = (DATA / "zoo-v1.safetensors").stat().st_size / 1e6
    assert f"zoo-v1.safetensors`, {size:.1f} MB" in GUIDE
    with safe_open(DATA / "zoo-v1.safetensors", "pt") as f:
        params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys()
                     if k.startswith("base/"))
    assert (f"The model: Llama, hidden {c['hidden']}, {c['layers']} layers, {c['heads']} heads, "
            f"MLP {c['intermediate']}, {len(VOCAB)}-token character vocabulary, untied "
            f"embeddings — {params / 1e6:.2f}M parameters") in GUIDE
    b = c["base"]
    assert (f"AdamW (lr {_e(b['lr'])}, betas 0.9/0.98, batch {b['batch']}, grad clip 1), "
            f"{b['warmup']} warm-up steps, cosine decay over {b['steps']} steps") in GUIDE
    experts = {e["name"]: e for e in c["experts"]}
    assert {e["replay"] for e in experts.values()} == {0.3} and "and 30% replay" in GUIDE
    plain = c["expert"]
    assert all(experts[n]["schedule"] is None for n in ("rev", "sort"))
    add = {json.dumps(experts[n]["schedule"]) for n in ("add", "add_seed2")}
    assert len(add) == 1
    add_s = json.loads(add.pop())
    assert (f"`rev` and `sort` {plain['steps']} steps at lr {_e(plain['lr'])}; `add` and "
            f"`add_seed2` (same skill, other data seed) {add_s['steps']} steps at lr "
            f"{_e(add_s['lr'])}") in GUIDE
    assert f"{meta['config']['eval_examples']} prompt/answer pairs to steer" in GUIDE


def test_the_kin_preset_and_its_bars_as_the_guide_states_them():
    kin = ZooConfig.kin()
    assert {e.replay for e in kin.experts} == {0.5} and all(e.schedule is None
                                                           for e in kin.experts)
    assert (f"({kin.expert.steps} steps at lr {_e(kin.expert.lr)}, half replay)") in GUIDE
    assert (f"every expert ≥ {KIN_EXPERT_MIN} on its skill; the base ≤ {KIN_BASE_MAX}; two "
            "experts of one skill are each other's nearest kin; the task-arithmetic merge "
            f"(weight {KIN_WEIGHT}) of one expert per skill keeps every skill ≥ "
            f"{KIN_MERGED_MIN}") in GUIDE
    # the control: the spelling helper gives the guide's forms
    assert (_e(3e-3), _e(5e-4), _e(2e-4)) == ("3e-3", "5e-4", "2e-4")
    assert re.search(r"\d\.\d+M parameters", GUIDE)
