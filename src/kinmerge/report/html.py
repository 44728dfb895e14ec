"""`kinmerge report DIR`: one self-contained HTML page for any run folder (breed, evolve, demo).

Images are embedded as base64 data URIs, so the page can be mailed or archived alone. What is
shown is what the folder holds, most telling first: a one-line headline (the evolved winner
against the best hand recipe, the best merge against its parents, the best bred model), the
winner's recipe (best.yml), the held-out scores and the kinship matrix of a demo, then
summary.json as a table (its `generations` as a second one), every PNG/SVG/JPEG as a figure
(the family tree last), every CSV as a table, other JSON and YAML files folded away. Numbers
show four significant digits; a cell never wraps (a wide table scrolls inside its own box)
and long cells (recipes, genomes) fold behind their first line, so a row is one line.

A tiny inline script records, once the page has loaded, how many images decoded, any script
error, how far the page overflows the window's width, any word a table cell broke across
lines, and where the headline ends, in #render-check, so a headless browser can check the
page really rendered and reads as intended.

>>> write_report("runs/breed")              # doctest: +SKIP
PosixPath('runs/breed/report.html')
"""
from __future__ import annotations

import base64
import csv
import html
import json
import logging
import re
from pathlib import Path
from typing import Any

from kinmerge.io.outpath import check_out, write_error

log = logging.getLogger(__name__)
IMAGE_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg",
               ".jpeg": "image/jpeg"}
MAX_ROWS = 300
FLOAT = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+(?=[eE]))([eE][-+]?\d+)?")  # not an integer

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0;display:block;overflow-x:auto;
max-width:100%}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top;
white-space:nowrap}
h1,p,figcaption{overflow-wrap:anywhere}
.headline{font-size:1.15em;background:#eef6ee;border-left:4px solid #3a3;padding:.6em 1em}
.headline.bad{background:#fbf0ee;border-color:#c63}
pre.recipe{max-height:24em}
th{background:#f4f4f4}tr:nth-child(even) td{background:#fafafa}
figure{display:inline-block;margin:.5em;vertical-align:top;max-width:calc(100% - 1em)}
figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.8em;color:#666}
pre{background:#f7f7f7;padding:.6em;overflow:auto;font-size:.8em}
.scroll{max-height:32em;overflow:auto}#render-check{display:none}
td table{font-size:1em;margin:0}details.cell summary{cursor:pointer;color:#555}
"""

# Records, in the page itself, whether every image decoded and whether any script failed.
CHECK_SCRIPT = r"""
window.__errors=[];
window.addEventListener('error',function(e){window.__errors.push(String(e.message||e));});
window.addEventListener('load',function(){
  var imgs=document.images,ok=0;
  for(var i=0;i<imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0){ok++;}}
  var el=document.getElementById('render-check');
  var over=document.documentElement.scrollWidth-window.innerWidth;
  // a word of a table cell drawn on two lines is broken: its range has two line boxes
  var broken=[],cells=document.querySelectorAll('td,th'),words=0;
  for(var c=0;c<cells.length;c++){
    var walk=document.createTreeWalker(cells[c],NodeFilter.SHOW_TEXT),n;
    while((n=walk.nextNode())){
      if(n.parentElement.closest('pre'))continue;
      var re=/\S+/g,m;
      while((m=re.exec(n.data))){
        var r=document.createRange();r.setStart(n,m.index);r.setEnd(n,m.index+m[0].length);
        var rs=r.getClientRects(),tops={},lines=0;
        for(var k=0;k<rs.length;k++){var t=Math.round(rs[k].top);if(!tops[t]){tops[t]=1;lines++;}}
        words++;if(lines>1&&broken.length<10){broken.push(m[0]);}
      }
    }
  }
  // the tallest row of a CSV table: one line per row keeps many trials on a screen
  var tall=0,trs=document.querySelectorAll('.scroll tr');
  for(var i=0;i<trs.length;i++){tall=Math.max(tall,trs[i].getBoundingClientRect().height);}
  var h=document.getElementById('headline');
  var head=h?Math.ceil(h.getBoundingClientRect().bottom+window.scrollY):null;
  el.textContent=JSON.stringify({images:imgs.length,loaded:ok,errors:window.__errors,
    overflow:over,width:window.innerWidth,height:window.innerHeight,words:words,
    broken:broken,headline_bottom:head,tallest_row:Math.ceil(tall)});
  el.setAttribute('data-status',ok===imgs.length&&window.__errors.length===0&&over<=0&&
    broken.length===0&&(head===null||head<=window.innerHeight)?'ok':'bad');
});
"""


def write_report(run: str | Path, out: str | Path | None = None, *,
                 plots: bool = True) -> Path:
    """Write `run`/report.html (or `out`) describing the run folder `run`.

    With `plots`, a breed run's figures are (re)drawn from its data first.
    """
    run = Path(run)
    if not run.is_dir():
        from kinmerge.errors import KinmergeError

        raise KinmergeError(f"not a folder: {run}", where=str(run),
                            fix="give the run folder (the --out of breed, evolve or demo)")
    out = check_out(out if out is not None else run / "report.html", option="--out",
                    folder=False)
    if plots:
        from kinmerge.report.plots import write_run_plots

        write_run_plots(run)
    try:
        out.write_text(render(run))
    except OSError as e:
        raise write_error(e, out) from e
    log.info("report written to %s", out)
    return out


def render(run: Path) -> str:
    summary = _load_json(run / "summary.json")
    summary = summary if isinstance(summary, dict) else None
    parts = [f"<h1>kinmerge run: {_e(run.resolve().name)}</h1>"]
    if summary is not None:
        line = headline(summary)
        if line is not None:
            text, good = line
            parts.append(f"<p id='headline' class='headline{'' if good else ' bad'}'>"
                         f"{_e(text)}</p>")
    parts.append(f"<p>Folder <code>{_e(run.resolve())}</code>.</p>")
    shown: set[str] = set()
    best = run / "best.yml"
    if best.is_file():  # the winner's recipe: what the run is for, so not folded away
        parts.append("<h2>The winner: best.yml</h2><p>Rebuild it with "
                     "<code>kinmerge merge best.yml DIR</code>.</p><pre class='recipe'>"
                     f"{_e(best.read_text(errors='replace')[:200_000])}</pre>")
        shown.add(best.name)
    if summary is not None:
        scores = summary.get("scores")
        if isinstance(scores, dict) and scores and all(isinstance(v, dict)
                                                       for v in scores.values()):
            parts.append("<h2>Held-out scores</h2>" + _rows_table(
                [{"model": k, **v} for k, v in scores.items()]))
        kin = summary.get("kinship")
        if isinstance(kin, dict) and isinstance(kin.get("models"), list):
            parts.append("<h2>Kinship</h2>" + _kinship_tables(kin))
        rest = {k: v for k, v in summary.items()
                if not (k == "scores" and isinstance(scores, dict) and scores
                        and all(isinstance(v, dict) for v in scores.values()))
                and not (k == "kinship" and isinstance(kin, dict) and "models" in kin)}
        parts.append("<h2>Summary</h2>" + _kv_table(rest))
        gens = summary.get("generations")
        if isinstance(gens, list) and gens and isinstance(gens[0], dict):
            parts.append("<h2>Generations</h2>" + _rows_table(_generation_rows(gens)))
    images = sorted(p for p in run.iterdir() if p.suffix.lower() in IMAGE_TYPES)
    # a demo folder holds its evolve/ and breed/ runs: their figures belong on the page too
    # (but not breed/family.png when the folder's own family tree, drawn from every lineage
    # below it, is already there)
    images += sorted(p for d in sorted(run.iterdir()) if d.is_dir() and (d / "summary.json")
                     .is_file() for p in d.iterdir() if p.suffix.lower() in IMAGE_TYPES
                     and not (p.name == "family.png" and (run / p.name).is_file()))
    # the family tree (search fitness) after the figures of held-out scores
    images.sort(key=lambda p: p.stem == "family")
    if images:
        parts.append("<h2>Figures</h2>" + "".join(_figure(p, run) for p in images))
    for f in sorted(run.glob("*.csv")):
        rows = _read_csv(f)
        more = f" (first {MAX_ROWS} of {len(rows)})" if len(rows) > MAX_ROWS else ""
        parts.append(f"<h2>{_e(f.name)}{more}</h2><div class='scroll'>"
                     + _rows_table(rows[:MAX_ROWS]) + "</div>")
    others = [f for f in sorted(run.glob("*.json")) if f.name != "summary.json"]
    for f in [f for f in sorted(run.glob("*.yml")) if f.name not in shown] + others:
        text = f.read_text(errors="replace")
        parts.append(f"<details><summary>{_e(f.name)}</summary><pre>{_e(text[:200_000])}"
                     "</pre></details>")
    body = "\n".join(parts)
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>kinmerge report: {_e(run.resolve().name)}</title>"
            f"<style>{STYLE}</style><script>{CHECK_SCRIPT}</script></head>\n<body>\n{body}\n"
            "<p id='render-check' data-status='pending'>pending</p>\n</body></html>\n")


def headline(s: dict) -> tuple[str, bool] | None:
    """The run's result in one sentence, and whether it is the hoped-for one: the evolved
    winner against the best hand recipe (evolve), the best merge against its parents and the
    evolved recipe against the best hand merge (demo), the best bred model (breed)."""
    try:
        if "best_merge" in s and isinstance(s.get("scores"), dict) and s.get("parents"):
            best = s["scores"][s["best_merge"]]["mean"]
            parents = {p: s["scores"][p]["mean"] for p in s["parents"]}
            good = all(best > v for v in parents.values())
            text = (f"Best merge {s['best_merge']} (held-out mean {best:.3f}) "
                    f"{'beats' if good else 'does NOT beat'} both parents ("
                    + ", ".join(f"{p} {v:.3f}" for p, v in parents.items()) + ")")
            e = s.get("evolve")
            if isinstance(e, dict) and "heldout_mean" in e and "best_hand_mean" in e:
                won = bool(e.get("beats_best_hand_merge"))
                text += (f"; the evolved recipe ({e['heldout_mean']:.3f}) "
                         f"{'beats' if won else 'does NOT beat'} the best hand merge "
                         f"{e['best_hand_merge']} ({e['best_hand_mean']:.3f})")
                good = good and won
            return text + ".", good
        if "best_search" in s and "mode" in s:
            trials = f" after {s['trials']} trials" if "trials" in s else ""
            if s.get("best_baseline") and "best_heldout" in s:
                hand = s["baselines_heldout"][s["best_baseline"]]
                won = bool(s.get("winner_beats_best_baseline"))
                return (f"Evolved winner ({s['mode']}{trials}): held-out {s['best_heldout']:.3f}"
                        f" {'beats' if won else 'does NOT beat'} the best hand recipe "
                        f"{s['best_baseline']} ({hand:.3f}, best of "
                        f"{len(s['baselines_heldout'])} tried); search fitness "
                        f"{s['best_search']:.3f}.", won)
            return (f"Evolved winner ({s['mode']}{trials}): search fitness "
                    f"{s['best_search']:.3f}; no held-out split, so no comparison with hand "
                    "recipes.", True)
        if "best_model" in s and "best_score" in s:
            evals = f" after {s['evaluations']} evaluations" if "evaluations" in s else ""
            stop = f"; stopped: {s['stop_reason']}" if s.get("stop_reason") else ""
            return (f"Best bred model {s['best_model']}: fitness (search) "
                    f"{s['best_score']:.3f}{evals}{stop}.", True)
    except (KeyError, TypeError, ValueError):  # a summary of another shape: no headline
        return None
    return None


def _kinship_tables(kin: dict) -> str:
    """A kinship matrix per metric, rows and columns named by the models' last parts."""
    labels = [Path(str(m)).name or str(m) for m in kin["models"]]
    out = []
    for metric in ("cs", "pcc", "ed"):
        rows = kin.get(metric)
        if not (isinstance(rows, list) and len(rows) == len(labels)):
            continue
        out.append(f"<p>{_e(metric)}</p>" + _rows_table(
            [{"": a, **{b: v for b, v in zip(labels, row)}} for a, row in zip(labels, rows)]))
    extra = {k: kin[k] for k in ("base", "n", "mean_pairwise", "notes") if k in kin}
    return "".join(out) + (_kv_table(extra) if extra else "")


def _generation_rows(gens: list[dict]) -> list[dict]:
    """A generation per row; the list of merges becomes a count and its exploration pair."""
    rows = []
    for g in gens:
        row = {k: v for k, v in g.items() if k != "merged"}
        if "merged" in g:
            row["children"] = len(g["merged"])
        rows.append(row)
    return rows


def _figure(p: Path, run: Path) -> str:
    data = base64.b64encode(p.read_bytes()).decode()
    uri = f"data:{IMAGE_TYPES[p.suffix.lower()]};base64,{data}"
    name = p.relative_to(run).as_posix()
    return (f"<figure><img src='{uri}' alt='{_e(p.stem)}'>"
            f"<figcaption>{_e(name)}</figcaption></figure>")


def _kv_table(d: dict) -> str:
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_fmt(_best_first(k, v))}</td></tr>"
                    for k, v in d.items() if k != "generations")
    return f"<table>{cells}</table>"


def _best_first(key: str, v: Any) -> Any:
    """Held-out scores by name (evolve's baselines and sources) read best first."""
    if (key.endswith("heldout") and isinstance(v, dict) and v
            and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                    for x in v.values())):
        return dict(sorted(v.items(), key=lambda kv: -kv[1]))
    return v


def _rows_table(rows: list[dict]) -> str:
    if not rows:
        return "<p>(empty)</p>"
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list) and all(isinstance(x, (str, int, float)) for x in v):
        return _e(", ".join(_fmt(x) if isinstance(x, float) else _name(x) for x in v))
    if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
        return _rows_table([{"": k, **x} for k, x in v.items()])  # e.g. model -> scores
    if isinstance(v, dict) and v:
        return _kv_table(v)
    if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        return _rows_table(v)
    if isinstance(v, (dict, list)):
        return _fold(json.dumps(v))
    if v is None:
        return "—"
    return _fold(_name(v))


def _name(v: Any) -> str:
    """A path into a cache or run folder reads better as its last two parts."""
    s = str(v)
    if s.startswith("/") and "\n" not in s and s.count("/") > 2:
        return "…/" + "/".join(Path(s).parts[-2:])
    return s


def _fold(s: str, limit: int = 80) -> str:
    """Long text (a recipe, a genome) folded away behind its first line."""
    if len(s) <= limit:
        return _e(s)
    head = s.splitlines()[0][:60] if s.strip() else s[:60]
    return (f"<details class='cell'><summary>{_e(head)}…</summary>"
            f"<pre>{_e(s[:20_000])}</pre></details>")


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: _cell_value(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _cell_value(v: Any) -> Any:
    """A CSV cell as the value it writes: a float (shown with four digits), or the list or
    mapping of a JSON cell (a genome, per-task scores); else the text."""
    if not isinstance(v, str):
        return v
    s = v.strip()
    if s[:1] and s[:1] in "[{":
        try:
            value = json.loads(s)
        except ValueError:
            return v
        if isinstance(value, dict) and all(isinstance(x, (int, float, str)) or x is None
                                           for x in value.values()):
            # per-task scores of a row: one line, not a table inside the row
            return ", ".join(f"{k} {_fmt(x) if isinstance(x, float) else x}"
                             for k, x in value.items())
        return value
    if FLOAT.fullmatch(s):
        return float(s)
    return v


def _load_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)
