"""The trained zoo: a tiny Llama base and its experts, built deterministically and cached.

>>> root = kinmerge.zoo.zoo()   # the shipped zoo (zoo/artifact.py), unpacked once  # doctest: +SKIP
>>> kinmerge.zoo.zoo(from_scratch=True)   # trained here (minutes; CPU-dependent) # doctest: +SKIP
>>> AutoModelForCausalLM.from_pretrained(root / "add")                        # doctest: +SKIP

Layout of a zoo directory:
    zoo.json                    manifest: config, seed, models, skills, task files
    base/ add/ add_seed2/ ...   Hugging Face model directories (config, safetensors, tokenizer)
    tasks/<skill>/{search,heldout}.jsonl   prompt/answer pairs (exact match)
    tasks/<skill>/choices.jsonl            the held-out split as multiple choice
    tasks/text.txt                         held-out examples as plain text (perplexity)

The recipe that makes merges work on models this small (docs/guides/zoo.md has the numbers): the
base is pretrained to convergence on every task format at short lengths; each expert extends
one skill to longer inputs with small steps (few hundred steps, lr <= 1e-3, 30% replay of the
pretraining mixture), so task vectors stay small and nearly orthogonal between skills.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from kinmerge.errors import KinmergeError
from kinmerge.threads import using
from kinmerge.zoo import tasks as T
from kinmerge.io.atomic import atomic_dir
from kinmerge.io.outpath import check_out
from kinmerge.zoo.manifest import ZooManifest
from kinmerge.zoo.tokenizer import BOS_ID, EOS_ID, PAD_ID, VOCAB, save_tokenizer
from kinmerge.zoo.train import Schedule, isolated_torch, train

log = logging.getLogger(__name__)
FORMAT = 2  # bump when the layout or the training code changes what a config builds


@dataclass(frozen=True)
class Expert:
    """A fine-tune of the base on one skill; `replay` of the general tasks keeps the formats."""

    name: str
    skill: str
    seed: int
    replay: float = 0.3
    schedule: Schedule | None = None  # None: the zoo's expert schedule
    # the skills it is trained on, with their parts ((skill, parts), ...): () for `skill`
    # alone; `skill` stays the one it is scored and labelled by (its main skill)
    mix: tuple[tuple[str, int], ...] = ()

    def skills(self) -> tuple[str, ...]:
        """Its training skills, each repeated by its parts (drawn uniformly from)."""
        return tuple(s for s, parts in self.mix for _ in range(parts)) or (self.skill,)


@dataclass(frozen=True)
class ZooConfig:
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    intermediate: int = 256
    base: Schedule = Schedule(steps=1000, lr=3e-3, batch=64, warmup=50)
    expert: Schedule = Schedule(steps=250, lr=5e-4, batch=64, warmup=25)
    experts: tuple[Expert, ...] = (
        # 3-digit addition is a bigger step from 2-digit than 9 letters from 7: more steps
        # (400 left the experts at 0.725 / 0.245 on some CPUs; zoo-v1 is trained with 1000)
        Expert("add", "add", seed=1, schedule=Schedule(steps=1000, lr=1e-3, batch=64,
                                                      warmup=25)),
        Expert("add_seed2", "add", seed=2,
               schedule=Schedule(steps=1000, lr=1e-3, batch=64, warmup=25)),
        Expert("rev", "rev", seed=1),
        Expert("sort", "sort", seed=1),
    )
    parents: tuple[str, str] = ("rev", "sort")  # the pair the demo merges
    eval_examples: int = 200
    # the skills scored (tasks/ files) and the base's pretraining formats, from
    # tasks.CATALOGUE; () is the default zoo's (tasks.DEFAULT_SKILLS, DEFAULT_PRETRAIN)
    skills: tuple[str, ...] = ()
    pretrain: tuple[str, ...] = ()

    def skill_names(self) -> tuple[str, ...]:
        return self.skills or T.DEFAULT_SKILLS

    def pretrain_names(self) -> tuple[str, ...]:
        return self.pretrain or T.DEFAULT_PRETRAIN

    @classmethod
    def kin(cls) -> "ZooConfig":
        """The breeding family (`--preset kin`, 5-8 minutes on 2 cores): three skills that
        compose (sort, shift, upper), two experts each from different seeds, trained gently
        (lr 2e-4, 200 steps, half replay) so that task vectors stay short. A task-arithmetic
        merge of one expert per skill keeps all three skills and beats every two-skill merge,
        while two same-skill experts (near relatives) gain nothing by merging: the breeding
        guide (docs/guides/breed.md) shows what greedy merging, exploration and
        predicted-gain selection make of it.
        (`rev`, also in pretraining, is left out: its task vector wipes out the others.)"""
        gentle = Schedule(steps=200, lr=2e-4, batch=64, warmup=25)
        return cls(expert=gentle, skills=("sort", "shift", "upper"),
                   pretrain=("rev", "sort", "shift", "upper", "copy"),
                   experts=tuple(Expert(f"{s}{i}", s, seed=i, replay=0.5)
                                 for s in ("sort", "shift", "upper") for i in (1, 2)),
                   parents=("sort1", "shift1"))

    @classmethod
    def mix(cls) -> "ZooConfig":
        """The second breeding family (`--preset mix`), where relatedness is not the skill
        label by construction: the kin preset's base, schedule and skills, but six experts
        each trained on an overlapping mixture of two skills, three parts of its main skill
        to one of another: every ordered pair of sort, shift and upper, data seeds 1-6. Every
        pair of experts shares a skill; a three-skill model can come from several pairs."""
        kin = cls.kin()
        pairs = [(a, b) for a in kin.skills for b in kin.skills if a != b]
        return cls(expert=kin.expert, skills=kin.skills, pretrain=kin.pretrain,
                   experts=tuple(Expert(f"{a}_{b}", a, seed=i, replay=0.5,
                                        mix=((a, 3), (b, 1)))
                                 for i, (a, b) in enumerate(pairs, start=1)),
                   parents=("sort_shift", "upper_sort"))

    @classmethod
    def preset(cls, name: str) -> "ZooConfig":
        """A named config: `default` (the shipped zoo's), `kin`, `mix`, `tiny`."""
        makers = {"default": cls, "kin": cls.kin, "mix": cls.mix, "tiny": cls.tiny}
        if name not in makers:
            raise KinmergeError(f"unknown zoo preset {name!r}", where="zoo preset",
                                fix=f"choose among {', '.join(makers)}")
        return makers[name]()

    @classmethod
    def tiny(cls) -> "ZooConfig":
        """Seconds to build: for tests, where only shapes, files and determinism matter."""
        return cls(hidden=32, layers=2, heads=2, intermediate=64,
                   base=Schedule(steps=30, lr=3e-3, batch=16, warmup=5, horizon=45),
                   expert=Schedule(steps=10, lr=5e-4, batch=16, warmup=2),
                   experts=(Expert("add", "add", seed=1), Expert("add_seed2", "add", seed=2),
                            Expert("rev", "rev", seed=1)),
                   parents=("add", "rev"), eval_examples=16)

    def to_dict(self) -> dict:
        """The config as JSON-able data; `skills` and `pretrain` are left out at their
        defaults, so the default zoo's digest (and the shipped zoo's manifest) stay as they
        were before those fields existed."""
        d = asdict(self)
        for key in ("skills", "pretrain"):
            if not d[key]:
                del d[key]
        for e in d["experts"]:  # likewise an expert's mix (so kin's digest stays as it was)
            if not e["mix"]:
                del e["mix"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ZooConfig":
        """The inverse of `to_dict` (a manifest's `config`)."""
        def sched(x: dict | None) -> Schedule | None:
            return Schedule(**x) if x else None
        experts = tuple(Expert(**{**e, "schedule": sched(e.get("schedule")),
                                  "mix": tuple((s, int(n)) for s, n in e.get("mix", ()))})
                        for e in d["experts"])
        return cls(**{**d, "base": sched(d["base"]), "expert": sched(d["expert"]),
                      "experts": experts, "parents": tuple(d["parents"]),
                      "skills": tuple(d.get("skills", ())),
                      "pretrain": tuple(d.get("pretrain", ()))})

    def digest(self, seed: int) -> str:
        blob = json.dumps({"format": FORMAT, "seed": seed, "config": self.to_dict()},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def llama_config(cfg: ZooConfig):
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=len(VOCAB), hidden_size=cfg.hidden,
                       intermediate_size=cfg.intermediate, num_hidden_layers=cfg.layers,
                       num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
                       max_position_embeddings=32, rms_norm_eps=1e-6, tie_word_embeddings=False,
                       bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID)


def save_model(model: torch.nn.Module, out: Path) -> Path:
    """A loadable HF directory: config, model.safetensors (float32), tokenizer.

    Written with safetensors directly (sorted names, fixed metadata): the same weights give
    the same bytes, and no progress bar is printed.
    """
    from safetensors.torch import save_file
    out.mkdir(parents=True, exist_ok=True)
    save_config(model.config, out)
    tensors = {k: v.detach().contiguous() for k, v in sorted(model.state_dict().items())}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    save_tokenizer(out)
    return out


def save_config(config, out: Path) -> None:
    """config.json and generation_config.json of a zoo model."""
    from transformers import GenerationConfig
    config.save_pretrained(str(out))
    GenerationConfig.from_model_config(config).save_pretrained(str(out))


def write_tasks(root: Path, seed: int, n: int,
                skills: tuple[str, ...] = T.DEFAULT_SKILLS) -> dict[str, dict[str, str]]:
    """Evaluation files for every skill; returns {skill: {split: relative path}}."""
    files: dict[str, dict[str, str]] = {}
    text: list[str] = []
    for skill in skills:
        splits = T.eval_splits(skill, seed, n)
        d = Path("tasks") / skill
        files[skill] = {s: str(d / f"{s}.jsonl") for s in splits}
        for s, ex in splits.items():
            T.write_jsonl(root / files[skill][s], ex)
        files[skill]["choices"] = str(d / "choices.jsonl")
        T.write_choices(root / files[skill]["choices"], splits["heldout"], seed)
        text += [p + a for p, a in splits["heldout"]]
    (root / "tasks" / "text.txt").write_text("\n".join(text) + "\n")
    return files


def held_out_prompts(seed: int, n: int,
                     skills: tuple[str, ...] = T.DEFAULT_SKILLS) -> frozenset[str]:
    """Prompts of every evaluation split: training never sees them."""
    return frozenset(p for skill in skills for ex in T.eval_splits(skill, seed, n).values()
                     for p, _ in ex)


def build_zoo(out: str | Path, config: ZooConfig | None = None, seed: int = 0, *,
              threads: int | None = None) -> Path:
    """Train the base and every expert of `config` into `out` (built aside, then renamed).

    Trained under kinmerge.threads' policy for training (one thread unless `threads`,
    KINMERGE_THREADS or your OMP_NUM_THREADS says otherwise: torch's default of one thread a
    core made a busy 2-core machine 7x slower), running deterministic algorithms from a
    seeded generator; the thread count, both torch settings and the random state are
    restored on return (nothing process-wide is left changed)."""
    with using("train", threads), isolated_torch():
        return _build_zoo(out, config, seed)


def _build_zoo(out: str | Path, config: ZooConfig | None = None, seed: int = 0) -> Path:
    from transformers import LlamaForCausalLM
    cfg = config or ZooConfig()
    names = cfg.skill_names()
    T.check_skills(names + cfg.pretrain_names()
                   + tuple(s for e in cfg.experts for s in (e.skill, *e.skills())), "zoo config")
    out = check_out(out)
    torch.use_deterministic_algorithms(True)
    t0 = time.perf_counter()
    with atomic_dir(out) as tmp:
        skills = write_tasks(tmp, seed, cfg.eval_examples, names)
        reserved = held_out_prompts(seed, cfg.eval_examples, names)
        torch.manual_seed(seed)
        base = LlamaForCausalLM(llama_config(cfg))
        general = T.Mixture(tuple(T.CATALOGUE[k][1] for k in cfg.pretrain_names()),
                            reserved=reserved)
        train(base, general, cfg.base, seed, "base")
        save_model(base, tmp / "base")
        models = {"base": {"path": "base", "skill": None}}
        for ex in cfg.experts:
            model = copy.deepcopy(base)
            data = T.Mixture(tuple(T.CATALOGUE[s][0] for s in ex.skills()), general.main,
                             ex.replay, reserved)
            train(model, data, ex.schedule or cfg.expert, seed * 1000 + ex.seed, ex.name)
            save_model(model, tmp / ex.name)
            models[ex.name] = {"path": ex.name, "skill": ex.skill}
        manifest = {"format": FORMAT, "seed": seed, "digest": cfg.digest(seed),
                    "config": cfg.to_dict(), "models": models, "skills": skills,
                    "parents": list(cfg.parents), "text": "tasks/text.txt"}
        typed = ZooManifest.from_dict(manifest)  # the typed record writes the JSON
        (tmp / "zoo.json").write_text(json.dumps(typed.to_dict(), indent=2) + "\n")
    log.info("zoo built in %.0fs: %s", time.perf_counter() - t0, out)
    return out
