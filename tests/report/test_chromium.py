"""The report renders in headless Chromium: a real screenshot, every image decoded, no
script or console errors."""
import json
import re
import shutil
import subprocess
import zlib

import pytest

from kinmerge.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which(
    "google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (.ci/run installs "
                                                          "Debian's chromium package)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def chromium(tmp_path, *args, name="profile"):
    profile = tmp_path / name
    profile.mkdir()
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


def png_pixels(path):
    """Decode an 8-bit RGB(A) PNG (what Chromium writes) into (width, height, rows)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, color = (int.from_bytes(body[0:4], "big"),
                                           int.from_bytes(body[4:8], "big"), body[8], body[9])
            assert depth == 8 and color in (2, 6)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride = zlib.decompress(idat), width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):  # undo the per-row PNG filters
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows, bpp


def render_check(tmp_path, url, size, name):
    """The page's own record of how it rendered (#render-check), at window `size`."""
    dom = chromium(tmp_path, "--dump-dom", f"--window-size={size}",
                   "--virtual-time-budget=5000", url, name=name)
    assert dom.returncode == 0, dom.stderr[-2000:]
    m = re.search(r"id=\"render-check\" data-status=\"(\w+)\">([^<]*)<", dom.stdout)
    assert m, dom.stdout[-2000:]
    return m.group(1), json.loads(m.group(2).replace("&quot;", '"'))


def test_evolve_report_reads_in_the_first_screen_and_breaks_no_word(evolve_run, tmp_path):
    """At 1200x900 the verdict is on the first screen, no table cell breaks a word, and the
    history's rows are one line each (a 900 px screen holds well over 3 trials)."""
    page = write_report(evolve_run, plots=False)
    status, check = render_check(tmp_path, page.resolve().as_uri(), "1200,900", "evo")
    assert status == "ok", check
    assert check["broken"] == [] and check["words"] > 400
    assert check["headline_bottom"] <= 900 and check["overflow"] <= 0
    assert check["tallest_row"] < 40, check  # 900 px / 40 px: 20 trials a screen at least
    # the control: with the old cell style (wrap anywhere) in a narrow window, the same
    # check finds words broken across lines, so a pass above means something
    html = page.read_text().replace("white-space:nowrap}", "overflow-wrap:anywhere;"
                                    "white-space:normal;max-width:6em}")
    old = tmp_path / "old.html"
    old.write_text(html)
    status, check = render_check(tmp_path, old.resolve().as_uri(), "600,900", "old")
    assert status == "bad" and check["broken"], check


def test_report_renders_in_headless_chromium(breed_run, tmp_path):
    page = write_report(breed_run)
    url = page.resolve().as_uri()

    # 1. every <img> decoded and no script error, as recorded by the page itself
    dom = chromium(tmp_path, "--dump-dom", "--virtual-time-budget=5000", url, name="dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    m = re.search(r"id=\"render-check\" data-status=\"(\w+)\">([^<]*)<", dom.stdout)
    assert m, dom.stdout[-2000:]
    check = json.loads(m.group(2).replace("&quot;", '"'))
    assert m.group(1) == "ok", check
    assert check["images"] == check["loaded"] >= 4 and check["errors"] == []

    # 2. a real, non-blank screenshot, and nothing on the console at error level
    shot = tmp_path / "report.png"
    run = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2000",
                   "--virtual-time-budget=5000", "--enable-logging=stderr", "--v=0", url,
                   name="shot")
    assert run.returncode == 0, run.stderr[-2000:]
    # Chromium logs every console message of the page as "INFO:CONSOLE(line)", console.error
    # and uncaught exceptions included; the report writes none, so any such line is a failure
    console = [ln for ln in run.stderr.splitlines() if ":CONSOLE" in ln]
    assert not console, console
    assert shot.stat().st_size > 20_000
    assert_drawn(shot, (1200, 2000), step=20)


def assert_drawn(shot, size: tuple[int, int], step: int) -> None:
    """The screenshot has `size` and is a drawn page, not blank or one colour: pixel
    brightness sampled every `step` pixels varies, with some dark (text) but not mostly."""
    width, height, rows, bpp = png_pixels(shot)
    assert (width, height) == size
    sample = [sum(r[i:i + 3]) / 3 for r in rows[::step] for i in range(0, len(r), bpp * step)]
    mean = sum(sample) / len(sample)
    variance = sum((s - mean) ** 2 for s in sample) / len(sample)
    dark = sum(s < 128 for s in sample) / len(sample)
    assert variance > 200 and 0.005 < dark < 0.9, (mean, variance, dark)


LONG = "task_arithmetic_rev_sort_with_a_name_that_no_line_break_can_split_0.8"


def demo_like(root, breed_run):
    """A demo folder in miniature: many merges with long names, a wide kinship CSV, the
    demo's score figure, and evolve/ and breed/ runs with their own figures."""
    from kinmerge.demo import plot_scores
    from kinmerge.report.plots import write_run_plots

    run = root / "demo"
    shutil.copytree(breed_run, run / "breed")
    write_run_plots(run / "breed")
    (run / "evolve").mkdir()
    (run / "evolve" / "summary.json").write_text('{"mode": "ps", "trials": 3}')
    models = ["base", "add", "rev", "sort", "linear", "slerp", "ties", "dare_ties", LONG]
    scores = {m: {"rev": i / 10, "sort": 1 - i / 10, "mean": 0.5 + i / 1000}
              for i, m in enumerate(models)}
    plot_scores(scores, ["rev", "sort"], run / "scores.png", title="merging rev + sort")
    zoo = "/root/.cache/kinmerge/zoo/" + "v1-" + "0123456789abcdef" * 6
    summary = {"scores": scores, "parents": ["rev", "sort"], "best_merge": LONG,
               "merges": models[4:], "zoo": zoo, "recipe": "merge_method: ties\n" * 30,
               "evolve": {"heldout_mean": 0.955, "best_hand_merge": LONG,
                          "best_recipe": f"{root}/demo/evolve/" + "x" * 150 + ".yml"}}
    (run / "summary.json").write_text(json.dumps(summary))
    names = [f"{zoo}/{m}" for m in models]
    rows = [",".join(["", *names])] + [",".join([a, *(f"{0.1 * j:.6f}" for j in range(9))])
                                         for a in names]
    (run / "kinship.csv").write_text("\n".join(rows) + "\n")
    return run


def test_demo_like_report_fits_the_window_and_is_not_blank(breed_run, tmp_path):
    """At a fixed 600 px window (where tables without their own scroll box overflowed the
    page by 204 px) the page records that nothing overflows its width (wide tables scroll
    inside their own box, long names wrap), and the screenshot has content."""
    page = write_report(demo_like(tmp_path, breed_run))
    url = page.resolve().as_uri()
    size = "--window-size=600,1600"
    dom = chromium(tmp_path, "--dump-dom", size, "--virtual-time-budget=5000", url, name="dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    m = re.search(r"id=\"render-check\" data-status=\"(\w+)\">([^<]*)<", dom.stdout)
    assert m, dom.stdout[-2000:]
    check = json.loads(m.group(2).replace("&quot;", '"'))
    assert check["width"] == 600 and check["overflow"] <= 0, check
    assert m.group(1) == "ok" and check["images"] == check["loaded"] >= 5, check
    # the family tree once: the demo's own, drawn from every lineage below it
    assert dom.stdout.count("family.png</figcaption>") == 1
    assert (tmp_path / "demo/breed/family.png").is_file()

    shot = tmp_path / "demo.png"
    run = chromium(tmp_path, f"--screenshot={shot}", size, "--virtual-time-budget=5000", url,
                   name="shot")
    assert run.returncode == 0, run.stderr[-2000:]
    assert_drawn(shot, (600, 1600), step=16)
