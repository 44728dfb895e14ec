"""What a usable zoo must show, measured: every expert good at its own skill, the base bad at
all of them, and two experts of one skill more related to each other than to any other.

The scores themselves may move in the last digit between CPUs (their float kernels round
differently); these properties must not. `kinmerge zoo build` and the tests check them.

>>> p = measure(root); problems(p)                                      # doctest: +SKIP
[]
"""
from __future__ import annotations

import json
from pathlib import Path

EXPERT_MIN = 0.75  # an expert's held-out exact match on its own skill (zoo-v1's lowest: 0.81)
BASE_MAX = 0.10    # the base's, on every expert skill, at most


def measure(root: str | Path, split: str = "heldout") -> dict:
    """{"scores": {model: {skill: exact match}}, "skills": {model: skill}, "pcc": {a|b: v}}."""
    from kinmerge.evaluate import ExactMatch, evaluate_model
    from kinmerge.kinship import kinship_matrix
    root = Path(root)
    manifest = json.loads((root / "zoo.json").read_text())
    models = manifest["models"]
    skills = {n: m["skill"] for n, m in models.items() if m["skill"]}
    evaluators = [ExactMatch(root / manifest["skills"][s][split], name=s)
                  for s in dict.fromkeys(skills.values())]
    scores = {n: evaluate_model(root / m["path"], evaluators) for n, m in models.items()}
    experts = list(skills)
    matrix = kinship_matrix([str(root / models[e]["path"]) for e in experts],
                            base=str(root / models["base"]["path"]), metrics=["pcc"])
    pcc = {f"{a}|{b}": float(matrix["pcc"][i, j]) for i, a in enumerate(experts)
           for j, b in enumerate(experts) if i < j}
    return {"scores": scores, "skills": skills, "pcc": pcc}


def problems(p: dict, expert_min: float = EXPERT_MIN, base_max: float = BASE_MAX) -> list[str]:
    """Every property `p` (from `measure`) breaks, as sentences; [] for a good zoo."""
    out = []
    for name, skill in p["skills"].items():
        if p["scores"][name][skill] < expert_min:
            out.append(f"expert {name} scores {p['scores'][name][skill]:.3f} on {skill} "
                       f"(needs >= {expert_min})")
    for skill in dict.fromkeys(p["skills"].values()):
        if p["scores"]["base"][skill] > base_max:
            out.append(f"the base scores {p['scores']['base'][skill]:.3f} on {skill} "
                       f"(needs <= {base_max})")
    same = {k: v for k, v in p["pcc"].items() if _skill_pair(p, k)[0] == _skill_pair(p, k)[1]}
    cross = {k: v for k, v in p["pcc"].items() if k not in same}
    if same and cross and min(same.values()) <= max(cross.values()):
        out.append(f"same-skill kinship {min(same.values()):.3f} is not above every "
                   f"cross-skill kinship (max {max(cross.values()):.3f})")
    return out


def _skill_pair(p: dict, key: str) -> tuple[str, str]:
    a, b = key.split("|")
    return p["skills"][a], p["skills"][b]
