"""The shipped zoo: one trained family, stored in the package, the same on every machine.

Training the zoo from scratch gives different weights on different CPUs (their float kernels
round differently), and on some machines the addition experts came out much worse. So the
canonical zoo is trained once and shipped: `data/zoo-v1.safetensors` holds the base in float16
and each expert as its float16 difference from that float16 base; `data/zoo-v1.json` holds
the build config, the skills, and the sha256 of the artifact and of every `model.safetensors`
it unpacks to. Unpacking is exact float32 arithmetic (float16 -> float32, then one addition),
so it gives the same bytes everywhere, and every file is checked against its digest.

>>> root = materialize("zoo/")          # seconds; what `kinmerge zoo build zoo/` does  # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import logging
from importlib import resources
from pathlib import Path

import torch

from kinmerge.errors import KinmergeError
from kinmerge.io.atomic import atomic_dir
from kinmerge.io.outpath import check_out
from kinmerge.zoo.manifest import read_manifest
from kinmerge.zoo.family import FORMAT, ZooConfig, llama_config, save_config, write_tasks
from kinmerge.zoo.tokenizer import save_tokenizer

log = logging.getLogger(__name__)
VERSION = "v1"
STORAGE = "float16 base; each expert as float16 (expert - float16 base)"


def data_dir() -> Path:
    return Path(str(resources.files("kinmerge.zoo") / "data"))


def artifact_paths(version: str = VERSION, where: Path | None = None) -> tuple[Path, Path]:
    d = where or data_dir()
    return d / f"zoo-{version}.safetensors", d / f"zoo-{version}.json"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shipped_manifest(version: str = VERSION, where: Path | None = None) -> dict:
    """The artifact's manifest (config, seed, models, digests); raises if it is missing."""
    blob, meta = artifact_paths(version, where)
    if not meta.is_file() or not blob.is_file():
        raise KinmergeError(f"the shipped zoo {version} is not installed",
                            where=str(blob.parent),
                            fix="reinstall kinmerge, or build one with "
                                "`kinmerge zoo build OUT --from-scratch`")
    return json.loads(meta.read_text())


def shipped_digest(version: str = VERSION) -> str:
    """The cache key of the shipped zoo: its version and the start of its sha256."""
    return f"{version}-{shipped_manifest(version)['artifact_sha256'][:12]}"


def _unpacked(tensors: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    base = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("base/")}
    out = {k: v.float() for k, v in base.items()}
    if name != "base":
        for k in out:
            out[k] = out[k] + tensors[f"{name}/{k}"].float()
    return dict(sorted(out.items()))


def _write_model(tensors: dict[str, torch.Tensor], config: dict, out: Path) -> str:
    """A loadable HF directory; returns the sha256 of its model.safetensors."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_config(llama_config(ZooConfig.from_dict(config)), out)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    save_tokenizer(out)
    return sha256(out / "model.safetensors")


def materialize(out: str | Path, version: str = VERSION, where: Path | None = None) -> Path:
    """Unpack the shipped zoo into `out` (built aside, then renamed), checking every digest."""
    from safetensors.torch import load_file

    meta = shipped_manifest(version, where)
    blob, _ = artifact_paths(version, where)
    if sha256(blob) != meta["artifact_sha256"]:
        raise KinmergeError(f"the shipped zoo {blob.name} does not match its sha256",
                            where=str(blob), fix="reinstall kinmerge (the file is damaged)")
    tensors = load_file(str(blob))
    out = check_out(out)
    with atomic_dir(out) as tmp:
        skills = write_tasks(tmp, meta["seed"], meta["config"]["eval_examples"])
        models = {}
        for name, m in meta["models"].items():
            got = _write_model(_unpacked(tensors, name), meta["config"], tmp / name)
            if got != m["sha256"]:
                raise KinmergeError(
                    f"unpacked zoo model {name!r} has sha256 {got[:16]}..., expected "
                    f"{m['sha256'][:16]}...", where=str(blob),
                    fix="report this with your torch and safetensors versions; "
                        "`kinmerge zoo build OUT --from-scratch` trains a zoo instead")
            models[name] = {"path": name, "skill": m["skill"]}
        manifest = {"format": FORMAT, "seed": meta["seed"], "digest": f"{version}-{meta['artifact_sha256'][:12]}",
                    "source": f"shipped zoo-{version}", "config": meta["config"],
                    "models": models, "skills": skills, "parents": meta["parents"],
                    "text": "tasks/text.txt"}
        (tmp / "zoo.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("unpacked the shipped zoo %s into %s (digests checked)", version, out)
    return out


def pack(zoo_dir: str | Path, where: Path, version: str = VERSION) -> Path:
    """Store a trained zoo as an artifact in `where` (how `data/zoo-v1.*` was made)."""
    from safetensors.torch import load_file, save_file
    zoo_dir = Path(zoo_dir)
    manifest = read_manifest(zoo_dir)
    base = load_file(str(zoo_dir / "base" / "model.safetensors"))
    packed = {f"base/{k}": v.half() for k, v in base.items()}
    for name, m in manifest.models.items():
        if name == "base":
            continue
        expert = load_file(str(zoo_dir / m.path / "model.safetensors"))
        packed.update({f"{name}/{k}": (v - packed[f"base/{k}"].float()).half()
                       for k, v in expert.items()})
    where.mkdir(parents=True, exist_ok=True)
    blob, meta_path = artifact_paths(version, where)
    save_file(dict(sorted(packed.items())), str(blob), metadata={"format": "pt"})
    models = {}
    for name, m in manifest.models.items():
        d = where / f".pack-{name}"
        digest = _write_model(_unpacked(packed, name), manifest.config, d)
        models[name] = {"skill": m.skill, "sha256": digest}
        for f in d.iterdir():
            f.unlink()
        d.rmdir()
    meta = {"version": version, "seed": manifest.seed, "storage": STORAGE,
            "artifact_sha256": sha256(blob), "config": manifest.config,
            "parents": list(manifest.parents), "models": models}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return blob
