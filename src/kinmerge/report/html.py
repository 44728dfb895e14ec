"""`kinmerge report DIR`: one self-contained HTML page for any run folder (breed, evolve, demo).

Images are embedded as base64 data URIs, so the page can be mailed or archived alone. What is
shown is what the folder holds: summary.json as a table (its `generations` as a second one),
every CSV as a table, every PNG/SVG/JPEG as a figure, other JSON files folded away. A tiny
inline script records, once the page has loaded, how many images decoded and any script
error, in #render-check, so a headless browser can check the page really rendered.

>>> write_report("runs/breed")              # doctest: +SKIP
PosixPath('runs/breed/report.html')
"""
from __future__ import annotations

import base64
import csv
import html
import json
import logging
from pathlib import Path
from typing import Any

from kinmerge.io.outpath import check_out, write_error

log = logging.getLogger(__name__)
IMAGE_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg",
               ".jpeg": "image/jpeg"}
MAX_ROWS = 300

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}tr:nth-child(even) td{background:#fafafa}
figure{display:inline-block;margin:.5em;vertical-align:top}
figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.8em;color:#666}
pre{background:#f7f7f7;padding:.6em;overflow:auto;font-size:.8em}
.scroll{max-height:32em;overflow:auto}#render-check{display:none}
td table{font-size:1em;margin:0}details.cell summary{cursor:pointer;color:#555}
"""

# Records, in the page itself, whether every image decoded and whether any script failed.
CHECK_SCRIPT = """
window.__errors=[];
window.addEventListener('error',function(e){window.__errors.push(String(e.message||e));});
window.addEventListener('load',function(){
  var imgs=document.images,ok=0;
  for(var i=0;i<imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0){ok++;}}
  var el=document.getElementById('render-check');
  el.textContent=JSON.stringify({images:imgs.length,loaded:ok,errors:window.__errors});
  el.setAttribute('data-status',ok===imgs.length&&window.__errors.length===0?'ok':'bad');
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
    parts = [f"<h1>kinmerge run: {_e(run.resolve().name)}</h1>",
             f"<p>Folder <code>{_e(run.resolve())}</code>.</p>"]
    summary = _load_json(run / "summary.json")
    if isinstance(summary, dict):
        parts.append("<h2>Summary</h2>" + _kv_table(summary))
        gens = summary.get("generations")
        if isinstance(gens, list) and gens and isinstance(gens[0], dict):
            parts.append("<h2>Generations</h2>" + _rows_table(_generation_rows(gens)))
    images = sorted(p for p in run.iterdir() if p.suffix.lower() in IMAGE_TYPES)
    # a demo folder holds its evolve/ and breed/ runs: their figures belong on the page too
    images += sorted(p for d in sorted(run.iterdir()) if d.is_dir() and (d / "summary.json")
                     .is_file() for p in d.iterdir() if p.suffix.lower() in IMAGE_TYPES)
    if images:
        parts.append("<h2>Figures</h2>" + "".join(_figure(p, run) for p in images))
    for f in sorted(run.glob("*.csv")):
        rows = _read_csv(f)
        more = f" (first {MAX_ROWS} of {len(rows)})" if len(rows) > MAX_ROWS else ""
        parts.append(f"<h2>{_e(f.name)}{more}</h2><div class='scroll'>"
                     + _rows_table(rows[:MAX_ROWS]) + "</div>")
    others = [f for f in sorted(run.glob("*.json")) if f.name != "summary.json"]
    for f in sorted(run.glob("*.yml")) + others:
        text = f.read_text(errors="replace")
        parts.append(f"<details><summary>{_e(f.name)}</summary><pre>{_e(text[:200_000])}"
                     "</pre></details>")
    body = "\n".join(parts)
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>kinmerge report: {_e(run.resolve().name)}</title>"
            f"<style>{STYLE}</style><script>{CHECK_SCRIPT}</script></head>\n<body>\n{body}\n"
            "<p id='render-check' data-status='pending'>pending</p>\n</body></html>\n")


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
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in d.items()
                    if k != "generations")
    return f"<table>{cells}</table>"


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
        return list(csv.DictReader(f))


def _load_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)
