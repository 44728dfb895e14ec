"""Issue 19 item 3: multi-document recipes through kinmerge-yaml, and kinmerge-multi with
mergekit-multi's flags, with `kinmerge merge`'s stage semantics; the library dispatches."""
from __future__ import annotations

import hashlib

import pytest
import yaml
from click.testing import CliRunner

import kinmerge
from kinmerge.cli import main
from kinmerge.cli.mergekit_compat import main as kinmerge_yaml
from kinmerge.cli.mergekit_compat import multi_main as kinmerge_multi


def mega(family, final_named: bool = False) -> list[dict]:
    """mergekit's mega.yml pattern: two named stages, a final merge that uses them by name."""
    b, (f1, f2, f3) = family["base"], family["ft"]
    last = {"merge_method": "ties", "base_model": b,
            "models": [{"model": "first-merge", "parameters": {"weight": 0.6, "density": 0.5}},
                       {"model": "second-merge", "parameters": {"weight": 0.4,
                                                                 "density": 0.5}}]}
    return [{"name": "first-merge", "merge_method": "linear",
             "models": [{"model": f1, "parameters": {"weight": 0.5}},
                        {"model": f2, "parameters": {"weight": 0.5}}]},
            {"name": "second-merge", "merge_method": "slerp", "base_model": "first-merge",
             "models": [{"model": "first-merge"}, {"model": f3}], "parameters": {"t": 0.5}},
            ({"name": "third-merge"} if final_named else {}) | last]


def write(tmp_path, docs, name="mega.yml"):
    f = tmp_path / name
    f.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return f


def weights(folder) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


@pytest.mark.parametrize("final_named", [False, True])
def test_kinmerge_yaml_runs_multi_document_recipes_as_kinmerge_merge_does(family, tmp_path,
                                                                         final_named):
    f = write(tmp_path, mega(family, final_named))
    r = CliRunner().invoke(kinmerge_yaml, [str(f), str(tmp_path / "y"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "expected one YAML document" not in r.output
    ref = CliRunner().invoke(main, ["merge", str(f), str(tmp_path / "m"), "--no-progress"])
    assert ref.exit_code == 0, ref.output
    assert weights(tmp_path / "y") == weights(tmp_path / "m")
    # the control: the final stage, run by hand on the stages run by hand, gives these bytes
    docs = mega(family)
    s1 = kinmerge.merge({k: v for k, v in docs[0].items() if k != "name"}, tmp_path / "s1")
    s2 = kinmerge.merge({k: v for k, v in docs[1].items() if k != "name"}
                        | {"base_model": str(s1), "models": [{"model": str(s1)},
                                                             docs[1]["models"][1]]},
                        tmp_path / "s2")
    final = docs[2] | {"models": [m | {"model": str(p)} for m, p in
                                  zip(docs[2]["models"], (s1, s2))]}
    kinmerge.merge(final, tmp_path / "by-hand")
    assert weights(tmp_path / "y") == weights(tmp_path / "by-hand")
    assert sorted(p.name for p in tmp_path.iterdir() if ".kinmerge" in p.name) == []


def test_kinmerge_multi_writes_stages_and_the_final_merge(family, tmp_path):
    f = write(tmp_path, mega(family))
    inter, out = tmp_path / "intermediates", tmp_path / "final-merge"
    args = [str(f), "--intermediate-dir", str(inter), "--out-path", str(out), "--quiet"]
    r = CliRunner().invoke(kinmerge_multi, args)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in inter.iterdir()) == ["first-merge", "second-merge"]
    assert f"final merge: {out}" in r.output and f"stage first-merge: {inter / 'first-merge'}" \
        in r.output
    ref = CliRunner().invoke(main, ["merge", str(f), str(tmp_path / "m"), "--no-progress"])
    assert ref.exit_code == 0 and weights(out) == weights(tmp_path / "m")
    first = (inter / "first-merge" / "model.safetensors").stat().st_mtime_ns
    r = CliRunner().invoke(kinmerge_multi, args)  # lazy (the default): the stages are reused
    assert r.exit_code == 0, r.output
    assert "already holds this recipe's merge, reused" in " ".join(r.output.split())
    assert (inter / "first-merge" / "model.safetensors").stat().st_mtime_ns == first
    r = CliRunner().invoke(kinmerge_multi, [*args, "--no-lazy"])
    assert r.exit_code == 0, r.output
    assert (inter / "first-merge" / "model.safetensors").stat().st_mtime_ns != first
    assert weights(out) == weights(tmp_path / "m")
    # --no-lazy --no-overwrite: an existing stage folder is never replaced
    fresh = [str(f), "--intermediate-dir", str(inter), "--out-path", str(tmp_path / "f2")]
    r = CliRunner().invoke(kinmerge_multi, [*fresh, "--no-lazy", "--no-overwrite", "--quiet"])
    assert r.exit_code == 2, r.output
    assert f"stage 'first-merge': {inter / 'first-merge'} already holds this recipe's merge" \
        in " ".join(r.output.split())
    assert not (tmp_path / "f2").exists()


def test_kinmerge_multi_all_named_writes_every_stage(family, tmp_path):
    f = write(tmp_path, mega(family, final_named=True))
    inter = tmp_path / "i"
    r = CliRunner().invoke(kinmerge_multi, [str(f), "--intermediate-dir", str(inter),
                                            "--quiet"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in inter.iterdir()) == ["first-merge", "second-merge",
                                                       "third-merge"]
    ref = CliRunner().invoke(main, ["merge", str(f), str(tmp_path / "m"), "--no-progress"])
    assert ref.exit_code == 0 and weights(inter / "third-merge") == weights(tmp_path / "m")


@pytest.mark.parametrize("final_named, extra, message", [
    (False, [], "the recipe has an unnamed document (the final merge) but no output path"),
    (True, ["--out-path", "@o"], "--out-path was given, but every document of the recipe "
                                 "has a `name:`"),
    (False, ["--out-path", "@i"], "--intermediate-dir @i is OUT @i"),
])
def test_kinmerge_multi_refusals(family, tmp_path, final_named, extra, message):
    f = write(tmp_path, mega(family, final_named))
    subs = {"@o": str(tmp_path / "o"), "@i": str(tmp_path / "i")}
    r = CliRunner().invoke(kinmerge_multi, [str(f), "--intermediate-dir", str(tmp_path / "i"),
                                            "--quiet", *[subs.get(a, a) for a in extra]])
    assert r.exit_code == 2, r.output
    for k, v in subs.items():
        message = message.replace(k, v)
    assert message in r.output and "Traceback" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mega.yml"]


def test_kinmerge_multi_requires_intermediate_dir(family, tmp_path):
    f = write(tmp_path, mega(family))
    r = CliRunner().invoke(kinmerge_multi, [str(f), "--out-path", str(tmp_path / "o")])
    assert r.exit_code == 2 and "Missing option '--intermediate-dir'" in r.output


def test_stage_options_on_a_single_recipe_are_refused(family, tmp_path):
    f = write(tmp_path, [{k: v for k, v in mega(family)[0].items() if k != "name"}], "one.yml")
    for flag in (["--stage", "x"], ["--intermediate-dir", str(tmp_path / "i")]):
        r = CliRunner().invoke(main, ["merge", str(f), str(tmp_path / "o"), *flag])
        assert r.exit_code == 2, r.output
        assert f"{flag[0]} applies to a multi-stage recipe, but this recipe is a single " \
               "merge" in r.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "i").exists()


def test_a_single_named_document_is_a_stage(family, tmp_path):
    """mergekit-multi's format with one document: its name makes it a stage, not a bad key."""
    f = write(tmp_path, mega(family)[:1])
    out = kinmerge.merge(f, tmp_path / "o")
    plain = kinmerge.merge({k: v for k, v in mega(family)[0].items() if k != "name"},
                           tmp_path / "p")
    assert weights(out) == weights(plain)
