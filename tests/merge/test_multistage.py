"""Multi-stage recipes: several documents, later stages naming earlier ones (mergekit-multi)."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file

import kinmerge
from kinmerge.cli import main
from kinmerge.core.stages import is_multistage, read_stages, run_order

N = "model.layers.1.mlp.up_proj.weight"


def stages(family) -> list[dict]:
    b, (f1, f2, f3) = family["base"], family["ft"]
    return [
        {"name": "soup", "merge_method": "linear",
         "models": [{"model": f1, "parameters": {"weight": 1.0}},
                    {"model": f2, "parameters": {"weight": 1.0}}]},
        {"name": "ta", "merge_method": "task_arithmetic", "base_model": b,
         "models": [{"model": f3, "parameters": {"weight": 0.5}}]},
        {"merge_method": "slerp", "base_model": "soup", "parameters": {"t": 0.3},
         "models": [{"model": "soup"}, {"model": "ta"}]},
    ]


def write(tmp_path, docs, name="multi.yml"):
    f = tmp_path / name
    f.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return f




def test_stages_run_in_order_and_equal_separate_merges(family, tmp_path):
    docs = stages(family)
    f = write(tmp_path, docs)
    res = CliRunner().invoke(main, ["merge", str(f), str(tmp_path / "out"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multi.yml", "out"]  # no leftovers
    # the same three merges run one by one
    soup = kinmerge.merge({k: v for k, v in docs[0].items() if k != "name"}, tmp_path / "soup")
    ta = kinmerge.merge({k: v for k, v in docs[1].items() if k != "name"}, tmp_path / "ta")
    final = dict(docs[2], base_model=str(soup),
                 models=[{"model": str(soup)}, {"model": str(ta)}])
    want = kinmerge.merge_to_memory(final).tensors
    got = load_file(tmp_path / "out" / "model.safetensors")
    assert sorted(got) == sorted(want) and all(torch.equal(got[n], want[n]) for n in want)
    lineage = json.loads((tmp_path / "out" / "lineage.json").read_text())
    names = sorted(r["name"] for r in lineage["ancestors"].values() if r.get("recipe"))
    assert names == ["soup", "ta"]  # every stage's record, with its recipe
    assert "task_arithmetic" in json.dumps(lineage)


def test_a_named_stage_and_kept_intermediates(family, tmp_path, caplog):
    f = write(tmp_path, stages(family))
    keep = tmp_path / "stages"
    kinmerge.merge_stages(f, tmp_path / "o1", intermediate_dir=keep)
    assert sorted(p.name for p in keep.iterdir()) == ["soup", "ta"]
    with caplog.at_level("INFO"):
        kinmerge.merge_stages(f, tmp_path / "o2", intermediate_dir=keep)
    assert "stage soup: " in caplog.text and "already holds this recipe's merge, reused" \
        in caplog.text
    kinmerge.merge_stages(f, tmp_path / "only-ta", stage="ta")
    soup_free = load_file(tmp_path / "only-ta" / "model.safetensors")[N]
    assert torch.equal(soup_free, load_file(keep / "ta" / "model.safetensors")[N])


def test_order_follows_dependencies_not_documents(family, tmp_path):
    docs = stages(family)
    docs = [docs[2], docs[1], docs[0]]  # the final merge written first
    f = write(tmp_path, docs)
    ss, _ = read_stages(f)
    assert [s.name for s in run_order(ss)] == ["soup", "ta", None]
    assert is_multistage(f) and not is_multistage(write(tmp_path, docs[:1], "one.yml"))


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d[1].update(name="soup"), "document 2: duplicate stage name 'soup'"),
    (lambda d: d[0].pop("name"), "document 3: a second document without `name`"),
    (lambda d: d[0].update(name=["x"]), "document 1: name must be a string, got ['x']"),
    (lambda d: d[0]["models"][0].update(model="ta") or d[1].update(base_model="soup"),
     "stage 'soup' depends on itself"),
])
def test_structure_errors(family, tmp_path, mutate, message):
    docs = stages(family)
    mutate(docs)
    with pytest.raises(kinmerge.KinmergeError) as e:
        read_stages(write(tmp_path, docs))
    assert message in str(e.value)


def test_unknown_stage(family, tmp_path):
    f = write(tmp_path, stages(family))
    res = CliRunner().invoke(main, ["merge", str(f), str(tmp_path / "o"), "--stage", "nope"])
    assert res.exit_code == 2 and "no stage named 'nope' (stages: 'soup', 'ta')" in res.output


def test_plan_and_validate_every_stage_without_merging(family, tmp_path):
    f = write(tmp_path, stages(family))
    res = CliRunner().invoke(main, ["validate", str(f)])
    assert res.exit_code == 0, res.output
    assert "stage soup OK: linear" in res.output and "stage final OK: slerp, 30 output tensors" \
        in res.output
    res = CliRunner().invoke(main, ["validate", str(f), "--no-models"])
    assert "recipe OK: 3 stages (models not checked)" in res.output
    res = CliRunner().invoke(main, ["plan", str(f), "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    final = [r for r in rows if r["stage"] is None and r["tensor"] == "model.norm.weight"]
    assert [r["stage"] for r in rows if r["tensor"] == "model.norm.weight"] == ["soup", "ta", None]
    assert final[0]["base"] == "soup:model.norm.weight"  # a stage, by the name it was given
    assert final[0]["inputs"] == ["ta:model.norm.weight"]
    assert not (tmp_path / ".out.stages").exists()


def test_a_stage_with_a_lora_adapter(family, tmp_path):
    from safetensors.torch import save_file
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 1,
                                                          "lora_alpha": 2}))
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 24, generator=g), torch.randn(16, 1, generator=g)
    key = "base_model.model.model.layers.1.mlp.down_proj"
    save_file({f"{key}.lora_A.weight": a, f"{key}.lora_B.weight": b},
              lora / "adapter_model.safetensors")
    docs = stages(family)[:1] + [{"merge_method": "passthrough",
                                  "models": [{"model": f"soup+{lora}"}]}]
    f = write(tmp_path, docs)
    assert [s.needs for s in read_stages(f)[0]] == [(), ("soup",)]
    res = CliRunner().invoke(main, ["validate", str(f)])
    assert res.exit_code == 0 and "stage final OK: passthrough" in res.output, res.output
    out = kinmerge.merge_stages(f, tmp_path / "out")
    soup = kinmerge.merge_to_memory({k: v for k, v in docs[0].items() if k != "name"})
    n = "model.layers.1.mlp.down_proj.weight"
    got = load_file(out / "model.safetensors")[n]
    assert torch.equal(got, soup.tensors[n] + (b @ a) * 2.0)


@pytest.mark.parametrize("runner", ["merge", "run_all"])
def test_a_stage_the_plan_refuses_fails_before_any_stage_merges(family, tmp_path, monkeypatch,
                                                                  runner):
    """A final stage that only planning can refuse (a layer range the stages do not have)
    stops the run before the earlier stages spend their time merging: nothing is written."""
    from kinmerge.core import multistage
    docs = stages(family)
    docs[2] = {"merge_method": "passthrough",
               "slices": [{"sources": [{"model": "soup", "layer_range": [0, 40]}]}]}
    f = write(tmp_path, docs)
    ran = []
    real = multistage._run_stage
    monkeypatch.setattr(multistage, "_run_stage", lambda s, *a, **k: ran.append(s.name)
                        or real(s, *a, **k))
    with pytest.raises(kinmerge.KinmergeError) as e:
        if runner == "merge":
            kinmerge.merge_stages(f, tmp_path / "out")
        else:
            multistage.run_all(f, tmp_path / "stages", out=tmp_path / "out")
    assert "layer_range [0, 40] is outside model soup, which has 3 layers" in str(e.value)
    assert "where: stage final (document 3): recipe passthrough over soup" in str(e.value)
    assert ran == []  # no stage merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multi.yml"]  # nothing written
