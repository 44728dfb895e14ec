"""The docs' benchmark tables are generated: each `bench:` block must equal what
tools/results/bench.py renders from its JSON under benchmarks/results/, and the format is
pinned here on hand-made inputs."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tools.results.bench import (BLOCKS, PAGES, busy_table, candidates_table,
                                  kin_zoo_sentence, kinship_drift, kinship_table, merge_table,
                                  read, render, startup_table, thread_parity_table,
                                  topk_parity, write_blocks, write_source)
from tools.results.render import block_text

ROOT = Path(__file__).parents[1]
META = {"name": "x", "command": "bench x", "machine": "Test CPU (2 cores)", "date": "2026-12-01"}


def test_every_bench_block_is_its_generators_output():
    """Edit a measured table by hand, or change a renderer without rewriting: fails
    (`python -m tools.results bench` rewrites every block from the committed JSON)."""
    placed = [n for names in PAGES.values() for n in names]
    assert sorted(placed) == sorted(BLOCKS) and len(set(placed)) == len(placed)
    for page, names in PAGES.items():
        text = (ROOT / page).read_text()
        for name in names:
            assert block_text(text, name, tag="bench") == render(name, ROOT), \
                f"{page} bench:{name} differs from its generator: python -m tools.results bench"


def test_every_source_names_its_command_machine_and_date():
    for source in {s for s, _ in BLOCKS.values()}:
        d = read(source, ROOT)
        assert d["name"] == source
        assert d["command"].startswith((f"benchmarks/{d['benchmark']}.py",
                                         "python -m tools.results "))
        assert d["machine"] and re.fullmatch(r"\d{4}-\d\d-\d\d", d["date"])


# a measured-looking cell: a number with a unit of time, memory or ratio
MEASURED = re.compile(r"\d(\.\d+)? ?(s|ms|MB|GB|×)( |$|\||\))")


@pytest.mark.parametrize("page", ["docs/concepts/performance.md",
                                  "docs/concepts/kinship-metrics.md"])
def test_no_hand_written_timing_table_is_left(page):
    """Outside the generated blocks (and the CPU-versus-CUDA section, written from the H100
    run's raw output in benchmarks/results/2026-12-06-h100/), no table row holds a time, a
    memory size or a ratio."""
    text = re.sub(r"<!-- bench:(\S+) -->.*?<!-- /bench:\1 -->", "", (ROOT / page).read_text(),
                  flags=re.S)
    text = re.sub(r"### CPU versus CUDA.*?\n## ", "## ", text, flags=re.S)
    rows = [ln for ln in text.splitlines() if ln.startswith("|") and MEASURED.search(ln)]
    assert rows == []
    # the control: the generated blocks do hold such rows
    assert any(MEASURED.search(ln) for n in PAGES[page]
               for ln in render(n, ROOT).splitlines() if ln.startswith("|"))


def test_merge_table_format():
    d = {**META, "runs": 3, "density": 0.5, "rows": [
        {"size": "1B", "method": "read 4 + write 1", "setting": "floor", "load": 2.04,
         "kinmerge": {"wall": 9.96, "rss": 0.5}},
        {"size": "1B", "method": "linear", "setting": "default", "load": 1.0, "runs": 3,
         "kinmerge": {"wall": 10.0, "rss": 0.52, "ratio": 0.5, "rss_ratio": 0.25},
         "before": {"wall": 30.0, "rss": 0.7, "ratio": 1.5},
         "mergekit": {"wall": 20.0, "rss": 2.08}},
        {"size": "1B", "method": "ties", "setting": "1", "load": None, "runs": 1,
         "kinmerge": {"wall": 4.0, "rss": 1.0, "ratio": 0.1},
         "mergekit": {"wall": 40.0, "rss": 2.0}}]}
    assert merge_table(d).splitlines() == [
        "| size | method | threads | load avg | kinmerge | before | mergekit | kinmerge ÷ "
        "mergekit (time) | peak RSS kinmerge / before / mergekit | ÷ mergekit (RSS) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        "| 1B | read 4 + write 1 (floor) | 1 | 2.0 | 10.0 s |  |  |  | 0.50 / – / – GB |  |",
        "| 1B | linear | default | 1.0 | 10.0 s | 30.0 s | 20.0 s | 0.50× (before: 1.50×) | "
        "0.52 / 0.70 / 2.08 GB | 0.25× |",
        "| 1B | ties (density 0.5) (1 round) | `OMP_NUM_THREADS=1` for both | – | 4.0 s |  | "
        "40.0 s | 0.10× | 1.00 / – / 2.00 GB |  |",
        "", "_From `benchmarks/results/x.json`: `bench x` on Test CPU (2 cores), 2026-12-01._"]
    # kinmerge alone (--skip-mergekit): no mergekit columns at all
    alone = {**META, "rows": [{"size": "1B", "method": "linear", "setting": "default",
                               "load": 1.0, "kinmerge": {"wall": 1.0, "rss": 0.5}},
                              {"size": "1B", "method": "linear", "setting": "2",
                               "load": 1.0, "kinmerge": {"wall": 2.0}}]}
    assert merge_table(alone).splitlines()[:4] == [
        "| size | method | threads | load avg | kinmerge | peak RSS kinmerge |",
        "| --- | --- | --- | --- | --- | --- |", "| 1B | linear | default | 1.0 | 1.0 s | 0.50 GB |",
        "| 1B | linear | `OMP_NUM_THREADS=2` | 1.0 | 2.0 s | – GB |"]
    del alone["rows"][0]["kinmerge"]["rss"]  # no RSS kept at all: no RSS column
    assert merge_table(alone).splitlines()[0] == "| size | method | threads | load avg | kinmerge |"


def test_busy_table_divides_by_the_default_row():
    rows = [{"size": "1B", "method": m, "setting": s, "load": 1.0, "kinmerge": {"wall": w}}
            for m, s, w in (("linear", "default", 4.0), ("linear", "busy2", 6.0),
                            ("ties", "default", 10.0), ("ties", "busy", 9.0))]
    rows.insert(0, {"size": "1B", "method": "read 4 + write 1", "setting": "floor",
                    "kinmerge": {"wall": 3.0, "rss": 0.5}})
    lines = busy_table({**META, "rows": rows}).splitlines()
    assert lines[2:6] == ["| 1B | linear | nothing | 1.0 | 4.0 s | 1.00× |",
                          "| 1B | linear | 2 busy processes | 1.0 | 6.0 s | 1.50× |",
                          "| 1B | ties | nothing | 1.0 | 10.0 s | 1.00× |",
                          "| 1B | ties | 1 busy process | 1.0 | 9.0 s | 0.90× |"]
    assert lines[6] == ""  # the floor row has no default row to compare with: left out


def test_kinship_table_and_drift_sentence():
    d = {**META, "params_per_model": 322_500_000, "dtype": "bf16", "rows": [
        {"what": "startup", "seconds": [], "peak_rss_mb": [230, 231]},
        {"what": "pair", "seconds": [7.0, 3.3, 5.0], "peak_rss_mb": [245]},
        {"what": "compat", "seconds": [8.24, 8.21], "peak_rss_mb": [5325]}],
        "compat": {"exact": {"pcc": 0.7061}, "drift": {"cs": 0.004, "pcc": 0.0321, "ed": 0.05}}}
    assert kinship_table(d).splitlines()[:5] == [
        "| 322.5M parameters per model, bf16 | time | peak RSS |", "| --- | --- | --- |",
        "| start-up: `import torch, kinmerge.kinship` only | — | 231 MB |",
        "| `kinship A B --base BASE` (exact) | 3.3–7.0 s | 245 MB |",
        "| `kinship --compat modelkinship` (float32 whole vectors) | 8.2 s | 5.2 GB |"]
    assert kinship_drift(d) == (
        "On a related pair (pcc ≈ 0.71) of 322M-parameter models ModelKinship's float32 "
        "arithmetic was off by 0.4 % on `cs`, 3.2 % on `pcc` and 5.0 % on `ed` "
        "(`benchmarks/results/x.json`, 2026-12-01).")


def test_startup_table_says_what_was_not_probed():
    d = {**META, "runs": 5, "load": [1.25, 2.0], "rows": [
        {"command": "import torch", "median_s": 2.0, "min_s": 1.5, "max_s": 3.0,
         "over_pass_s": 1.96, "torch": None},
        {"command": "kinmerge methods", "median_s": 0.3, "min_s": 0.25, "max_s": 0.5,
         "over_pass_s": 0.26, "torch": False}]}
    lines = startup_table(d).splitlines()
    assert lines[2:4] == ["| import torch | 2.00 s | 1.50 – 3.00 s | +1.96 s | — |",
                          "| kinmerge methods | 0.30 s | 0.25 – 0.50 s | +0.26 s | no |"]
    assert lines[-1].endswith("5 fresh processes a row, interleaved; load average 1.2 before, "
                              "2.0 after._")


def test_write_source_writes_the_json_and_rewrites_only_its_blocks(tmp_path):
    """What `bench_merge.py --write-docs merge-quiet` does after its run."""
    for page in PAGES:
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / page).write_text("".join(f"a\n<!-- bench:{n} -->\nold\n<!-- /bench:{n} -->\n"
                                             for n in PAGES[page]))
    data = {**META, "name": "merge-quiet", "rows": [
        {"size": "1B", "method": "linear", "setting": "default", "load": 1.0,
         "kinmerge": {"wall": 1.0, "rss": 0.5}}]}
    written = write_source(data, tmp_path)
    assert written == [tmp_path / "benchmarks/results/merge-quiet.json",
                       tmp_path / "docs/concepts/performance.md"]
    assert json.loads(written[0].read_text()) == data
    text = written[1].read_text()
    assert block_text(text, "merge-quiet", tag="bench") == merge_table(data)
    assert block_text(text, "merge-loaded", tag="bench") == "old"
    with pytest.raises(FileNotFoundError):  # every block at once needs every JSON
        write_blocks(tmp_path)


def test_kin_zoo_sentence():
    d = {**META, "seed": 3, "skills": {"a1": "a", "a2": "a", "b1": "b", "b2": "b"},
         "pcc": {"a1|a2": 0.8, "a1|b1": 0.1, "a1|b2": 0.12, "a2|b1": 0.09, "a2|b2": 0.11,
                 "b1|b2": 0.7},
         "composition": {"all": {"a1+b1": {"a": 0.9, "b": 0.8}},
                         "pairs": {"a1+b1": {"a": 0.9, "b": 0.8}}, "relatives": {}}}
    assert kin_zoo_sentence(d).splitlines()[0] == (
        "On seed 3, experts of one skill have pcc 0.70–0.80, across skills 0.09–0.12; the "
        "three-skill merge (a1 + b1) keeps a 0.900, b 0.800 (mean 0.850) against 0.850 for "
        "the best pair (a1 + b1).")


def test_candidates_table_and_its_ratios():
    row = {"params": 99_000_000, "outside_scoring_s": 20.0, "outside_scoring_cached_s": 5.0,
           "score_s": 1.0, "peak_rss_mb": 1353.4, "uncached_peak_rss_mb": 815, "sources_mb": 567,
           "model_mb": 189, "breed_merge_s": 4.1, "breed_load_build_s": 0.5,
           "breed_score_s": None}
    d = {**META, "sizes": [{**row, "size": "0.1B", "source_read_s": 2.0},
                           {**row, "size": "1B", "source_read_s": 0.5, "score_s": 3.0,
                            "breed_merge_s": 8.0}]}
    lines = candidates_table(d).splitlines()
    assert lines[2] == ("| 0.1B | 0.099B | 2.00 | 20.0 | 5.0 | 1.0 | 1353 | 815 | 567 | 189 | "
                        "4.1 / 0.5 / – |")
    assert lines[5] == ("At 1B, outside scoring took 40× one read of the sources without the "
                        "cache and 10× with it; from 0.1B to 1B scoring grew from 1.0 to 3.0 s "
                        "and a breeding child's merge to disk from 4.1 to 8.0 s.")


def _parity(differ: int, elements: int = 0, max_abs: float = 0.0) -> dict:
    return {"tensors": 39, "differ": differ, "elements": elements, "max_abs": max_abs}


def test_thread_parity_table_and_tie_order_sentence():
    same = _parity(0)
    results = {case: {"mergekit 1 vs 2 threads": _parity(1, 16922, 1.19e-7),
                      "kinmerge threads=1 vs 2": same, "kinmerge vs mergekit at 1 thread": same}
               for case in ("slerp_gradient", "model_stock", "karcher")}
    results["karcher"]["kinmerge vs mergekit at 1 thread"] = _parity(2, 1234567, 4.8e-7)
    for case in ("ties_bf16", "breadcrumbs_bf16"):
        results[case] = {**{k: same for k in ("mergekit run 1 vs 2 (1 thread)",
                                              "mergekit 1 vs 4 threads")},
                         "kinmerge mergekit order vs mergekit": same,
                         "kinmerge stable order vs mergekit": _parity(39, 7329, 0.2109)}
    d = {**META, "mergekit": "0.1.5", "torch": "2.13.0", "results": results,
         "shape": {"layers": 4, "hidden": 256, "intermediate": 512}}
    lines = thread_parity_table(d).splitlines()
    assert lines[2] == ("| slerp, gradient `t` | 1 tensor differs (16,922 elements, ≤ 1.2e-7) | "
                        "identical | identical |")
    assert lines[4].endswith("| identical | 2 tensors differ (1,234,567 elements, ≤ 4.8e-7) |")
    assert "mergekit 0.1.5, torch 2.13.0; a synthetic float32 Llama with 4 layers and 256 × 512 " \
           "MLP matrices, 39 tensors." in lines[-1]
    text = topk_parity(d)
    assert ("three runs at one thread and one each at 2 and 4 threads, all identical; "
            "kinmerge's `mergekit` order equal to them bit for bit; the `stable` order differs "
            "in every tensor (TIES: 7,329 elements, up to 0.21; breadcrumbs: 7,329 elements, up "
            "to 0.21)") in text
    results["ties_bf16"]["mergekit 1 vs 4 threads"] = _parity(3, 10, 0.1)  # the control
    assert "NOT all identical" in topk_parity(d)
