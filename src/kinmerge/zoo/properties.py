"""What a usable zoo must show, measured: every expert good at its own skill, the base bad at
all of them, and two experts of one skill more related to each other than to any other.

The scores themselves may move in the last digit between CPUs (their float kernels round
differently); these properties must not. `kinmerge zoo build` and the tests check them.

>>> p = measure(root); problems(p)                                      # doctest: +SKIP
[]
"""
from __future__ import annotations

from pathlib import Path

from kinmerge.zoo.manifest import read_manifest

EXPERT_MIN = 0.75  # an expert's held-out exact match on its own skill (zoo-v1's lowest: 0.81)
BASE_MAX = 0.10    # the base's, on every expert skill, at most
# the kin preset: experts stronger; the base knows shift/upper partly (per-letter maps
# generalise to longer words), so its bar is looser; a merge of one expert per skill keeps
# every skill at KIN_MERGED_MIN or more (task arithmetic, weight 0.8, as its breeding operator)
KIN_EXPERT_MIN, KIN_BASE_MAX, KIN_MERGED_MIN = 0.9, 0.5, 0.7
KIN_WEIGHT = 0.8


def measure(root: str | Path, split: str = "heldout") -> dict:
    """{"scores": {model: {skill: exact match}}, "skills": {model: skill}, "pcc": {a|b: v}}."""
    from kinmerge.evaluate import ExactMatch, evaluate_model
    from kinmerge.kinship import kinship_matrix
    root = Path(root)
    manifest = read_manifest(root)
    models = manifest.models
    skills = {n: m.skill for n, m in models.items() if m.skill}
    evaluators = [ExactMatch(root / manifest.skills[s][split], name=s)
                  for s in dict.fromkeys(skills.values())]
    scores = {n: evaluate_model(root / m.path, evaluators) for n, m in models.items()}
    experts = list(skills)
    matrix = kinship_matrix([str(root / models[e].path) for e in experts],
                            base=str(root / models["base"].path), metrics=["pcc"])
    pcc = {f"{a}|{b}": float(matrix["pcc"][i, j]) for i, a in enumerate(experts)
           for j, b in enumerate(experts) if i < j}
    return {"scores": scores, "skills": skills, "pcc": pcc}


def problems(p: dict, expert_min: float = EXPERT_MIN, base_max: float = BASE_MAX,
             kinship_rule: bool = True) -> list[str]:
    """Every property `p` (from `measure`) breaks, as sentences; [] for a good zoo.
    `kinship_rule`: also require same-skill experts to be the nearest kin (not for the mix
    preset, whose relatedness is not its skill labels)."""
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
    if kinship_rule and same and cross and min(same.values()) <= max(cross.values()):
        out.append(f"same-skill kinship {min(same.values()):.3f} is not above every "
                   f"cross-skill kinship (max {max(cross.values()):.3f})")
    return out


def _skill_pair(p: dict, key: str) -> tuple[str, str]:
    a, b = key.split("|")
    return p["skills"][a], p["skills"][b]


def is_kin(root: str | Path) -> bool:
    """Whether the zoo at `root` is of the kin preset's skills (single-skill experts)."""
    from kinmerge.zoo.family import ZooConfig
    cfg = read_manifest(root).config
    return (tuple(cfg.get("skills", ())) == ZooConfig.kin().skills
            and not any(e.get("mix") for e in cfg["experts"]))


def is_mix(root: str | Path) -> bool:
    """Whether the zoo at `root` has experts trained on skill mixtures (the mix preset)."""
    return any(e.get("mix") for e in read_manifest(root).config["experts"])


def check_zoo(root: str | Path, split: str = "heldout", measured: dict | None = None
              ) -> list[str]:
    """Every property the zoo at `root` should have and lacks ([] for a good zoo): the
    default properties, and for the kin preset its stricter bars and `composition`'s.
    `measured`: `measure(root, split)`, when the caller has it already."""
    p = measured or measure(root, split)
    if is_mix(root):  # the kin bars on each expert's main skill; no kinship or composition rule
        return problems(p, KIN_EXPERT_MIN, KIN_BASE_MAX, kinship_rule=False)
    if not is_kin(root):
        return problems(p)
    return (problems(p, KIN_EXPERT_MIN, KIN_BASE_MAX)
            + composition_problems({**composition(root, split), "experts": p["scores"]}))


def composition(root: str | Path, split: str = "heldout") -> dict:
    """Scores of task-arithmetic merges (weight 0.8) of the first expert of each skill: all
    of them, every pair of them, and each skill's two experts (near relatives)."""
    import itertools

    from kinmerge.core.merge import merge_to_memory
    from kinmerge.evaluate import ExactMatch
    root = Path(root)
    manifest = read_manifest(root)
    by_skill: dict[str, list[str]] = {}
    for name, m in manifest.models.items():
        if m.skill:
            by_skill.setdefault(m.skill, []).append(name)
    evaluators = [ExactMatch(root / manifest.skills[s][split], name=s) for s in by_skill]

    def score(names: tuple[str, ...]) -> dict[str, float]:
        recipe = {"merge_method": "task_arithmetic", "base_model": str(root / "base"),
                  "dtype": "float32", "models": [{"model": str(root / n), "parameters":
                                                  {"weight": KIN_WEIGHT}} for n in names]}
        model = merge_to_memory(recipe)
        return {k: v for e in evaluators for k, v in e(model).items()}

    firsts = tuple(names[0] for names in by_skill.values())
    return {"all": {"+".join(firsts): score(firsts)},
            "pairs": {"+".join(c): score(c) for c in itertools.combinations(firsts, 2)},
            "relatives": {"+".join(n[:2]): score(tuple(n[:2]))
                          for n in by_skill.values() if len(n) > 1},
            "skills": {n: s for s, names in by_skill.items() for n in names}}


def composition_problems(c: dict) -> list[str]:
    """`c`: `composition`'s, plus "experts": each expert's scores (`measure`'s "scores").
    The kin preset's family properties: the merge of all skills keeps each skill and beats
    every two-skill merge, and merging two same-skill experts (near relatives) gains nothing
    over the better of them (mean over the skills, 0.02 of slack)."""
    def mean(s: dict) -> float:
        return sum(s.values()) / len(s)
    out = []
    (name, full), = c["all"].items()
    weak = {k: v for k, v in full.items() if v < KIN_MERGED_MIN}
    if weak:
        out.append(f"the merge {name} keeps too little of "
                   + ", ".join(f"{k} ({v:.3f})" for k, v in weak.items())
                   + f" (needs >= {KIN_MERGED_MIN})")
    best_pair = max(c["pairs"].items(), key=lambda kv: mean(kv[1]))
    if mean(full) <= mean(best_pair[1]):
        out.append(f"the merge of all skills ({mean(full):.3f}) does not beat the best "
                   f"two-skill merge {best_pair[0]} ({mean(best_pair[1]):.3f})")
    for pair, scores in c["relatives"].items():
        better = max(mean(c["experts"][n]) for n in pair.split("+"))
        if mean(scores) > better + 0.02:
            out.append(f"same-skill experts {pair} gain by merging ({mean(scores):.3f} against "
                       f"{better:.3f} alone): near relatives would not stall greedy merging")
    return out
