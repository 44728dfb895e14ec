"""Tensor-by-tensor parity of kinmerge against mergekit-yaml on small synthetic models.

Builds a synthetic Llama base and three fine-tunes per dtype, writes one recipe per case,
merges each with `mergekit-yaml` (a subprocess, from its own venv) and with kinmerge (in this
process), then compares every output tensor: names, shapes and dtypes must be identical; the
values are compared in ulps of the output dtype.

Acceptance: at most 1 ulp for float32 outputs, 2 for bfloat16. TIES with density < 1 may
also differ where several equal magnitudes compete for the last places of a top-k trim
(which survive is a tie-break): at most 2% of the elements.

    .venv/bin/python benchmarks/parity_mergekit.py                 # all cases
    .venv/bin/python benchmarks/parity_mergekit.py --only slerp -v # a subset, worst tensors
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import yaml  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import kinmerge  # noqa: E402
from kinmerge.io.reader import ModelReader  # noqa: E402
from kinmerge.zoo.synthetic import synthetic_llama  # noqa: E402

DEFAULT_MK = "/tmp/mkvenv/bin/mergekit-yaml"
SHAPE = dict(layers=6, hidden=128, intermediate=344, vocab=256, heads=4, kv_heads=2)
ULP_TOL = {torch.float32: 1, torch.bfloat16: 2, torch.float16: 1}
TIE_BREAK_FRACTION = 0.02
T_GRADIENT = [{"filter": "self_attn", "value": [0, 0.5, 0.3, 0.7, 1]},
              {"filter": "mlp", "value": [1, 0.5, 0.7, 0.3, 0]}, {"value": 0.5}]
N_LAYERS = SHAPE["layers"]
# cases where mergekit stores float32 tensors under `dtype: bfloat16` (no out_dtype): the
# method's float32 mask promotes its result and mergekit casts only to an explicit out_dtype.
# kinmerge stores the recipe's dtype; the values are compared after rounding mergekit's.
F32_RESULT = {"arcee_fusion", "ramplus_tl"}
WHY = {n: "mergekit writes float32 tensors here (its float32 mask promotes the result); "
          "kinmerge writes the recipe's bfloat16: equal after rounding" for n in F32_RESULT}


@dataclass(frozen=True)
class Case:
    name: str
    recipe: dict  # model names "base", "ft1".."ft3" are replaced by paths
    dtype: str  # the recipe's dtype, also the input models' storage dtype
    tie_break: bool = False  # a top-k trim with density < 1 is involved


def _models(entries: list[tuple[str, dict]]) -> list[dict]:
    return [{"model": m, **({"parameters": p} if p else {})} for m, p in entries]


def recipes() -> list[tuple[str, dict, bool]]:
    """(name, recipe without dtype, involves a top-k tie-break)."""
    whole = [0, N_LAYERS]
    return [
        ("linear", {"merge_method": "linear", "models": _models(
            [("ft1", {"weight": 0.5}), ("ft2", {"weight": 0.3}), ("ft3", {"weight": 0.2})])},
         False),
        ("linear_unnormalized", {"merge_method": "linear", "parameters": {"normalize": False},
                                 "models": _models([("ft1", {"weight": 0.7}),
                                                    ("ft2", {"weight": 0.6}),
                                                    ("ft3", {"weight": -0.3})])}, False),
        ("linear_base_joins", {"merge_method": "linear", "base_model": "base",
                               "parameters": {"weight": 0.7},
                               "models": _models([("ft1", {"weight": 0.11}),
                                                  ("ft2", {"weight": 0.3})])}, False),
        ("slerp_models", {"merge_method": "slerp", "base_model": "base",
                          "models": _models([("base", None), ("ft1", None)]),
                          "parameters": {"t": T_GRADIENT}}, False),
        ("slerp_slices", {"merge_method": "slerp", "base_model": "base", "slices": [
            {"sources": [{"model": "base", "layer_range": whole},
                         {"model": "ft2", "layer_range": whole}]}],
            "parameters": {"t": T_GRADIENT}}, False),
        ("slerp_two_slices", {"merge_method": "slerp", "base_model": "base", "slices": [
            {"sources": [{"model": "base", "layer_range": [0, 4]},
                         {"model": "ft1", "layer_range": [0, 4]}]},
            {"sources": [{"model": "base", "layer_range": [4, 5]},
                         {"model": "ft1", "layer_range": [4, 5]}]},
            {"sources": [{"model": "base", "layer_range": [5, 6]},
                         {"model": "ft1", "layer_range": [5, 6]}],
             "parameters": {"t": 0.25}}],
            "parameters": {"t": T_GRADIENT}}, False),
        ("task_arithmetic", {"merge_method": "task_arithmetic", "base_model": "base",
                             "models": _models([("ft1", {"weight": 1.0}),
                                                ("ft2", {"weight": 0.5}),
                                                ("ft3", {"weight": -0.4})])}, False),
        ("task_arithmetic_norm_lambda", {
            "merge_method": "task_arithmetic", "base_model": "base",
            "parameters": {"normalize": True, "lambda": 0.7},
            "models": _models([("base", None), ("ft1", {"weight": 0.6}),
                               ("ft2", {"weight": [0.2, 0.8]}), ("ft3", {"weight": -0.3})])},
         False),
        ("ties", {"merge_method": "ties", "base_model": "base",
                  "models": _models([("ft1", {"weight": 1.0, "density": 0.5}),
                                     ("ft2", {"weight": 0.7, "density": 0.3}),
                                     ("ft3", {"weight": 0.5, "density": 0.8})])}, True),
        ("ties_gradient_density", {
            "merge_method": "ties", "base_model": "base", "parameters": {"lambda": 0.9},
            "models": _models([("base", None),
                               ("ft1", {"weight": 0.5, "density": [1, 0.7, 0.1]}),
                               ("ft2", {"weight": 0.3, "density": [1, 0.7, 0.1]}),
                               ("ft3", {"weight": 0.2, "density": 0.6})])}, True),
        ("ties_tiny_density", {"merge_method": "ties", "base_model": "base",
                               "models": _models([("ft1", {"weight": 1.0, "density": 0.005}),
                                                  ("ft2", {"weight": 1.0, "density": 0.5})])},
         True),
        ("ties_filter_fallthrough", {
            "merge_method": "ties", "base_model": "base", "parameters": {"density": 0.4},
            "models": _models([("ft1", {"weight": 0.5, "density": [{"filter": "mlp",
                                                                   "value": 0.7}]}),
                               ("ft2", {"weight": 0.5})])}, True),
        ("ties_unnormalized", {"merge_method": "ties", "base_model": "base",
                               "parameters": {"normalize": False},
                               "models": _models([("ft1", {"weight": 0.6, "density": 1.0}),
                                                  ("ft2", {"weight": 0.4, "density": 1.0})])},
         False),
        ("dare_linear_d1", {"merge_method": "dare_linear", "base_model": "base",
                            "models": _models([("ft1", {"weight": 0.5, "density": 1.0}),
                                               ("ft2", {"weight": 0.3, "density": 1.0}),
                                               ("ft3", {"weight": 0.2, "density": 1.0})])},
         False),
        ("dare_ties_d1", {"merge_method": "dare_ties", "base_model": "base",
                          "parameters": {"lambda": 1.1},
                          "models": _models([("ft1", {"weight": 0.5, "density": 1.0}),
                                             ("ft2", {"weight": 0.3, "density": 1.0}),
                                             ("ft3", {"weight": 0.2, "density": 1.0})])},
         False),
        ("passthrough_stack", {"merge_method": "passthrough", "slices": [
            {"sources": [{"model": "ft1", "layer_range": [0, 4]}]},
            {"sources": [{"model": "ft2", "layer_range": [2, 6]}]}]}, False),
        ("passthrough_scale", {"merge_method": "passthrough", "slices": [
            {"sources": [{"model": "ft1", "layer_range": [0, 3],
                          "parameters": {"scale": [{"filter": "o_proj", "value": 0.5},
                                                   {"value": 1.0}]}}]},
            {"sources": [{"model": "ft3", "layer_range": [3, 6]}]}]}, False),
    ] + method_recipes()


def method_recipes() -> list[tuple[str, dict, bool]]:
    """The methods of mergekit 0.1.5's registry added for issue 9: nuslerp ... ramplus_tl."""
    w3 = _models([("ft1", {"weight": 0.5}), ("ft2", {"weight": 0.3}), ("ft3", {"weight": 0.2})])
    three = _models([("ft1", None), ("ft2", None), ("ft3", None)])
    return [
        ("nuslerp", {"merge_method": "nuslerp", "base_model": "base", "models": _models(
            [("ft1", {"weight": 0.4}), ("ft2", {"weight": 0.6})])}, False),
        ("nuslerp_no_base", {"merge_method": "nuslerp", "models": _models(
            [("ft1", {"weight": 1.0}), ("ft3", {"weight": 3.0})])}, False),
        ("nuslerp_rows", {"merge_method": "nuslerp", "base_model": "base",
                          "parameters": {"nuslerp_flatten": False},
                          "models": _models([("ft1", {"weight": [0.2, 0.8]}),
                                             ("ft2", {"weight": 0.5})])}, False),
        ("nuslerp_row_wise", {"merge_method": "nuslerp",
                              "parameters": {"nuslerp_flatten": False,
                                             "nuslerp_row_wise": True},
                              "models": _models([("ft2", {"weight": 0.7}),
                                                 ("ft3", {"weight": 0.3})])}, False),
        ("multislerp", {"merge_method": "multislerp", "base_model": "base", "models": w3},
         False),
        ("multislerp_no_base", {"merge_method": "multislerp",
                                "parameters": {"normalize_weights": False},
                                "models": _models([("ft1", {"weight": 0.6}),
                                                   ("ft2", {"weight": 0.6})])}, False),
        ("karcher", {"merge_method": "karcher", "models": three}, False),
        ("karcher_base_joins", {"merge_method": "karcher", "base_model": "base",
                                "parameters": {"max_iter": 3, "tol": 1e-6},
                                "models": _models([("ft1", None), ("ft2", None)])}, False),
        ("sce", {"merge_method": "sce", "base_model": "base", "models": three}, False),
        ("sce_select_topk", {"merge_method": "sce", "base_model": "base",
                             "parameters": {"select_topk": 0.3, "int8_mask": True},
                             "models": three}, True),
        ("nearswap", {"merge_method": "nearswap", "base_model": "base",
                      "parameters": {"t": [0.0001, 0.01]},
                      "models": _models([("base", None), ("ft1", None)])}, False),
        ("arcee_fusion", {"merge_method": "arcee_fusion", "base_model": "base",
                          "models": _models([("ft2", None)])}, False),
        ("ram", {"merge_method": "ram", "base_model": "base", "parameters": {"epsilon": 0.01},
                 "models": three}, False),
        ("ramplus_tl", {"merge_method": "ramplus_tl", "base_model": "base",
                        "parameters": {"epsilon": 0.012, "r": 0.5, "alpha": 0.6},
                        "models": three}, False),
    ]


def cases(only: str | None) -> list[Case]:
    out = []
    for name, recipe, tie in recipes():
        for dt in ("float32", "bfloat16"):
            out.append(Case(f"{name}", {**recipe, "dtype": dt}, dt, tie))
    # out_dtype: the stored dtype differs from the working one
    extra = {n: r for n, r, _ in recipes()}
    out += [
        Case("linear+out_dtype", {**extra["linear"], "dtype": "float32",
                                  "out_dtype": "bfloat16"}, "float32"),
        Case("slerp+out_dtype", {**extra["slerp_models"], "dtype": "bfloat16",
                                 "out_dtype": "float32"}, "bfloat16"),
        Case("ties+out_dtype", {**extra["ties"], "dtype": "bfloat16",
                                "out_dtype": "float32"}, "bfloat16", True),
        Case("task_arith+out_dtype", {**extra["task_arithmetic"], "dtype": "bfloat16",
                                      "out_dtype": "float32"}, "bfloat16"),
        Case("linear_f32_inputs_bf16", {**extra["linear"], "dtype": "bfloat16"}, "float32"),
        Case("ties_f32_inputs_bf16", {**extra["ties"], "dtype": "bfloat16"}, "float32", True),
    ]
    return [c for c in out if only is None or any(o in c.name for o in only.split(","))]


# --- models and recipes -----------------------------------------------------------------------
def build_models(root: Path, dtype: str) -> dict[str, str]:
    dt = getattr(torch, dtype)
    d = root / f"models-{dtype}"
    paths = {"base": d / "base"}
    if not (d / "ft3" / "config.json").exists():
        synthetic_llama(paths["base"], dtype=dt, seed=0, **SHAPE)
        for i, delta in ((1, 0.01), (2, 0.02), (3, 0.015)):
            synthetic_llama(d / f"ft{i}", dtype=dt, seed=i, base=paths["base"], delta=delta,
                            **SHAPE)
    paths.update({f"ft{i}": d / f"ft{i}" for i in (1, 2, 3)})
    return {k: str(v) for k, v in paths.items()}


def resolve(obj, paths: dict[str, str]):
    """The recipe with model names replaced by paths."""
    if isinstance(obj, dict):
        return {k: (paths[v] if k in ("model", "base_model") else resolve(v, paths))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [resolve(v, paths) for v in obj]
    return obj


def golden_args(doc: str, ap: argparse.ArgumentParser | None = None
                ) -> argparse.Namespace | None:
    """The command line of a make_*_golden.py script (`--mergekit-bin` added to `ap`), or
    None, after saying so, when mergekit-yaml is not installed (the script then skips)."""
    ap = ap or argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--mergekit-bin", default=shutil.which("mergekit-yaml") or DEFAULT_MK)
    args = ap.parse_args()
    if not Path(args.mergekit_bin).exists():
        print("mergekit not installed, skipping")
        return None
    return args


def write_golden(out: Path, tensors: dict[str, torch.Tensor], key: str, meta: dict,
                 cases: int) -> None:
    """Write a golden file: the tensors (contiguous) with `meta` as JSON under metadata `key`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, out,
              metadata={key: json.dumps(meta)})
    print(f"wrote {out} ({out.stat().st_size} bytes, {cases} cases)")


# mergekit's bytes follow its torch thread count (its reductions round by the OpenMP split:
# measured, a float32 model_stock merge differs in 21 of 39 tensors between 1 and 2 threads);
# parity is defined at one thread, which kinmerge's merge arithmetic always uses
ONE_THREAD = ["--num-threads", "1"]
# torch's portable CPU kernels: where a golden depends on the CPU's vector width (arcee_fusion:
# a threshold on softmax-based importances), made and compared under these on every machine
PORTABLE_KERNELS = {"ATEN_CPU_CAPABILITY": "default"}


def mergekit_env(**extra: str) -> dict[str, str]:
    """The environment every golden generator runs mergekit in: one thread, offline."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1", **extra}


def run_mergekit(bin_: str, recipe_file: Path, out: Path,
                 env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([bin_, str(recipe_file), str(out), "--no-copy-tokenizer",
                           "--no-write-model-card", "--quiet", "--random-seed", "0",
                           *ONE_THREAD], capture_output=True, text=True,
                          env=env or mergekit_env())
    if proc.returncode != 0:
        raise RuntimeError(f"mergekit-yaml failed on {recipe_file}:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


# --- comparison -------------------------------------------------------------------------------
def ordered_bits(t: torch.Tensor) -> torch.Tensor:
    """Integers that order like the floats and step by 1 per ulp (-0.0 == +0.0)."""
    if t.dtype == torch.float32:
        i, mag = t.view(torch.int32).long(), 0x7FFFFFFF
    elif t.dtype in (torch.bfloat16, torch.float16):
        i, mag = t.view(torch.int16).long(), 0x7FFF
    else:
        raise TypeError(f"no ulp distance for {t.dtype}")
    return torch.where(i < 0, -(i & mag), i)


@dataclass
class Diff:
    max_ulp: int = 0
    max_abs: float = 0.0
    note: str = ""
    differing: int = 0
    numel: int = 0
    worst: tuple[int, str] = (0, "")
    problems: list[str] | None = None


def compare(kin: Path, mk: Path, round_mergekit: bool = False) -> Diff:
    """kinmerge's output against mergekit's; `round_mergekit` first rounds mergekit's wider
    tensors to kinmerge's dtype (for the F32_RESULT cases)."""
    d = Diff(problems=[])
    with ModelReader(kin) as a, ModelReader(mk) as b:
        na, nb = set(a.names()), set(b.names())
        if na != nb:
            d.problems.append(f"names differ: only kinmerge {sorted(na - nb)[:4]}, "
                              f"only mergekit {sorted(nb - na)[:4]}")
        for name in sorted(na & nb):
            x, y = a.get(name), b.get(name)
            if round_mergekit and x.dtype != y.dtype and x.shape == y.shape:
                d.note = f"mergekit stored {y.dtype}, rounded to {x.dtype} to compare"
                y = y.to(x.dtype)
            if x.shape != y.shape or x.dtype != y.dtype:
                d.problems.append(f"{name}: {x.dtype}{list(x.shape)} vs "
                                  f"{y.dtype}{list(y.shape)}")
                continue
            ulp = (ordered_bits(x) - ordered_bits(y)).abs()
            m = int(ulp.max()) if ulp.numel() else 0
            d.differing += int((ulp > 0).sum())
            d.numel += ulp.numel()
            if ulp.numel():
                d.max_abs = max(d.max_abs, float((x.double() - y.double()).abs().max()))
            if m > d.max_ulp:
                d.max_ulp, d.worst = m, (m, name)
        for key in ("num_hidden_layers", "torch_dtype"):
            ca, cb = a.config.get(key), b.config.get(key)
            cb = cb if cb is not None or key != "torch_dtype" else b.config.get("dtype")
            if ca != cb:
                d.problems.append(f"config.json {key}: kinmerge {ca!r}, mergekit {cb!r}")
    return d


def verdict(c: Case, d: Diff, out_dtype: torch.dtype) -> str:
    if d.problems:
        return "FAIL (structure)"
    if d.max_ulp <= ULP_TOL[out_dtype]:
        return "ok"
    if c.tie_break and d.differing <= TIE_BREAK_FRACTION * d.numel:
        return "ok (tie-break)"
    return "FAIL"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mergekit-bin", default=shutil.which("mergekit-yaml") or DEFAULT_MK)
    ap.add_argument("--work", default=None, help="working directory (default: a temp dir)")
    ap.add_argument("--only", default=None, help="comma-separated substrings of case names")
    ap.add_argument("--keep", action="store_true", help="keep the working directory and the merged models")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the worst tensors")
    args = ap.parse_args(argv)
    if not Path(args.mergekit_bin).exists() and not shutil.which(args.mergekit_bin):
        print("mergekit not installed, skipping")
        return 0
    torch.set_num_threads(1)
    work = Path(args.work or tempfile.mkdtemp(prefix="kinmerge-parity-"))
    work.mkdir(parents=True, exist_ok=True)
    selected = cases(args.only)
    paths = {dt: build_models(work, dt) for dt in sorted({c.dtype for c in selected})}
    rows, failed = [], 0
    for i, c in enumerate(selected):
        recipe = resolve(c.recipe, paths[c.dtype])
        tag = f"{i:02d}-{c.name}-{c.recipe['dtype']}"
        rf = work / f"{tag}.yml"
        rf.write_text(yaml.safe_dump(recipe, sort_keys=False))
        mk_out, kin_out = work / f"{tag}-mergekit", work / f"{tag}-kinmerge"
        for p in (mk_out, kin_out):
            shutil.rmtree(p, ignore_errors=True)
        try:
            run_mergekit(args.mergekit_bin, rf, mk_out)
            kinmerge.merge(rf, kin_out, copy_tokenizer=False, write_model_card=False)
            d = compare(kin_out, mk_out, round_mergekit=c.name in F32_RESULT)
        except Exception as e:  # one broken case should not hide the others
            d = Diff(problems=[f"{type(e).__name__}: {str(e).strip()[-400:]}"])
        out_dt = getattr(torch, c.recipe.get("out_dtype") or c.recipe["dtype"])
        v = verdict(c, d, out_dt)
        failed += not v.startswith("ok")
        pct = 100.0 * d.differing / d.numel if d.numel else 0.0
        dtypes = c.recipe["dtype"] + (f"->{c.recipe['out_dtype']}" if "out_dtype" in c.recipe
                                      else "") + ("" if c.dtype == c.recipe["dtype"]
                                                  else f" (inputs {c.dtype})")
        exact = ("bit-exact" + (" (rounded)" if d.note else "") if d.numel and not d.differing
                 else f"max abs {d.max_abs:.3g}")
        why = (WHY.get(c.name, "") if d.note else "") or (
            "equal magnitudes at the top-k threshold: mergekit's unstable sort keeps others"
            if c.tie_break and d.differing else "")
        rows.append((c.name, dtypes, d.max_ulp, pct, v, exact, why))
        print(f"{c.name:<28} {dtypes:<34} max ulp {d.max_ulp:>6}  differing {pct:7.3f}%  "
              f"{exact}  {v}", flush=True)
        if d.note:
            print(f"    {d.note}")
        if args.verbose and d.worst[1]:
            print(f"    worst: {d.worst[1]} ({d.worst[0]} ulp)")
        for p in d.problems or []:
            print(f"    {p}")
        if not args.keep:
            for p in (mk_out, kin_out):
                shutil.rmtree(p, ignore_errors=True)
    print()
    print(f"| {'recipe':<28} | {'dtype':<34} | max ulp | % differing | values | verdict | why |")
    print(f"|{'-' * 30}|{'-' * 36}|---------|-------------|--------|---------|-----|")
    for name, dts, ulp, pct, v, exact, why in rows:
        print(f"| {name:<28} | {dts:<34} | {ulp:>7} | {pct:>10.3f}% | {exact} | {v} | {why} |")
    print(f"\n{len(rows) - failed}/{len(rows)} cases within tolerance")
    if not args.keep and args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
