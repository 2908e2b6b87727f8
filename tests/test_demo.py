"""`aekit demo`: the page, its pictures, every plugin's part, a failing part, and the page in headless Chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import aekit.plugins
from aekit.cli import cli
from aekit.demo import DemoSection, PartResult, demo_parts, noise_supported, render_page

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def img_sources(page: str) -> list[str]:
    return [html.unescape(s) for s in re.findall(r'<img\b[^>]*\bsrc="([^"]*)"', page)]


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """One `aekit demo --quick` run shared by the tests: (folder, CliRunner result, summary)."""
    home = tmp_path_factory.mktemp("demo_home")
    out = tmp_path_factory.mktemp("demo") / "demo"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AEKIT_HOME", str(home))
        mp.delenv("AEKIT_LOAD_PLUGINS", raising=False)
        aekit.plugins.reset()
        result = CliRunner().invoke(cli, ["demo", "--out", str(out), "--quick", "--quiet", "--seed", "0"])
        parts = [e.name for e in demo_parts()]  # every installed part, in the order they run
        latest = (home / "latest-run").read_text(encoding="utf-8").strip()
        aekit.plugins.reset()
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    summary["latest_run"] = latest
    return out, result, summary, parts


def test_the_quick_demo_writes_one_page_with_every_part(quick_demo):
    out, result, summary, parts = quick_demo
    page = (out / "index.html").read_text(encoding="utf-8")
    assert f"wrote {out / 'index.html'}" in result.output
    assert {"compress", "generate", "embed", "umap"} <= set(parts)  # the built-in plugins' parts
    names = [s["name"] for s in summary["sections"]]
    assert names[0] == "training" and names[len(names) - len(parts):] == parts
    if noise_supported()[0]:
        assert "training-denoiser" in names and summary["denoiser_dir"]
    else:
        assert summary["denoiser_note"].startswith("no denoiser trained")
    assert summary["failed"] == [] and all(s["status"] == "ok" for s in summary["sections"]), summary["sections"]
    for section in summary["sections"]:
        assert f'id="part-{section["folder"]}"' in page
        assert html.escape(section["title"]) in page
    for part in ("compress", "generate", "embed", "umap"):
        section = next(s for s in summary["sections"] if s["name"] == part)
        assert section["images"], f"{part} shows no picture"
    assert any(s["tables"] for s in summary["sections"] if s["name"] == "compress")
    assert any(s["tables"] for s in summary["sections"] if s["name"] == "embed")


def test_every_picture_on_the_page_is_a_png_inside_the_demo_folder(quick_demo):
    out, _, summary, _ = quick_demo
    page = (out / "index.html").read_text(encoding="utf-8")
    sources = img_sources(page)
    assert len(sources) >= 6
    for src in sources:
        assert not re.match(r"^[a-z]+:", src) and not src.startswith("/"), src  # relative links only
        path = (out / src).resolve()
        assert out.resolve() in path.parents and path.is_file(), src
        assert path.read_bytes()[:8] == PNG_MAGIC, src
    assert len(sources) == sum(len(s["images"]) for s in summary["sections"])


def test_the_page_needs_no_network_and_no_scripts(quick_demo):
    out, _, _, _ = quick_demo
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<style>" in page and 'rel="stylesheet"' not in page


def test_the_demo_model_becomes_the_default_model(quick_demo):
    out, _, summary, _ = quick_demo
    assert Path(summary["model_dir"]) == out / "model"
    assert (out / "model" / "model.safetensors").is_file() and (out / "model" / "metrics.jsonl").is_file()
    assert Path(summary["latest_run"]) == (out / "model").resolve()  # not the denoiser, trained after it


FAKE_PARTS = """
import aekit
from aekit.demo import DemoSection


def broken(ctx):
    raise ValueError("boom <b>not bold</b>\\nsecond line")


def fine(ctx):
    name = ctx.save_grid("faces.png", [ctx.hwc(ctx.images[:4])], ["held out"])
    return DemoSection(title="Fine <i>part</i>", text="text with <script>alert(1)</script> and `code`",
                       images=[(name, "four & faces")], tables=[("t", ["a", "b"], [[1, 0.123456]])])


def lying(ctx):
    return DemoSection(title="Lying", images=[("never_written.png", "")])


def wrong_type(ctx):
    return 42


@aekit.hookimpl
def register_demos(register):
    register("broken", broken, help="raises", order=5)
    register("fine", fine, help="works", order=6)
    register("lying", lying, order=7)
    register("wrong-type", wrong_type, order=8)
"""


def test_a_failing_plugin_part_is_shown_and_the_others_still_run(quick_demo, install_plugin, tmp_path):
    demo_dir, _, _, _ = quick_demo
    install_plugin("aekit-fakeparts", "fakeparts", "aekit_fakeparts", FAKE_PARTS)
    out = tmp_path / "demo2"
    args = ["demo", "--out", str(out), "--quick", "--quiet", "--model", str(demo_dir / "model"),
            "--parts", "broken,fine,lying,wrong-type,compress"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "4 demo part(s) failed: broken, lying, wrong-type" not in result.output  # only three failed
    assert "3 demo part(s) failed: broken, lying, wrong-type" in result.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    status = {s["name"]: s for s in summary["sections"]}
    assert status["broken"]["status"] == "failed" and status["broken"]["error"] == "ValueError: boom <b>not bold</b>"
    assert "was not written" in status["lying"]["error"]
    assert "DemoSection" in status["wrong-type"]["error"]
    assert status["fine"]["status"] == "ok" and status["compress"]["status"] == "ok"
    assert [s["name"] for s in summary["sections"]][-5:] == ["broken", "fine", "lying", "wrong-type", "compress"]
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "ValueError: boom &lt;b&gt;not bold&lt;/b&gt;" in page and "<b>not bold" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script" not in page
    assert "Fine &lt;i&gt;part&lt;/i&gt;" in page and "<code>code</code>" in page and "four &amp; faces" in page
    assert "3 of 5 parts failed" in page
    for src in img_sources(page):
        assert (out / src).is_file(), src
    # the earlier demo's model was reused, not copied or retrained; --strict turns failures into exit status 1
    assert not (out / "model").exists()
    strict = CliRunner().invoke(cli, args + ["--strict"])
    assert strict.exit_code == 1 and "broken" in strict.output


def test_folder_and_part_mistakes_are_one_line_errors(tmp_path, quick_demo):
    demo_dir, _, _, _ = quick_demo
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.tex").write_text("precious", encoding="utf-8")
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "busy"), "--quick", "-q"])
    assert result.exit_code == 1 and "not empty and was not written by `aekit demo`" in result.output
    assert (tmp_path / "busy" / "thesis.tex").read_text(encoding="utf-8") == "precious"
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "d"), "--parts", "nosuch", "-q",
                                      "--model", str(demo_dir / "model")])
    assert result.exit_code == 1 and "unknown demo part(s) 'nosuch'" in result.output and "compress" in result.output
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "d"), "--denoiser", str(demo_dir / "model")])
    assert result.exit_code == 2 and "--denoiser goes with --model" in result.output


def test_rendering_escapes_everything_a_plugin_returns():
    section = DemoSection(title='<img src=x onerror="alert(1)">', text="a < b & c\n\nsecond `x<y`",
                          tables=[("<cap>", ["<h>"], [["<td>"]])])
    good = PartResult("p<", "plug&", "p_", 100, section=section, images=[('dir "x"/a b.png', "<caption>")])
    bad = PartResult("q", "plugin", "q", 100, error="RuntimeError: <script>alert(2)</script>")
    info = {"aekit_version": "0", "created": "now", "seed": 0, "quick": True, "elapsed_s": 1.0, "model_dir_shown": "<m>"}
    page = render_page([good, bad], [], info)
    assert "<img src=x" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert "<script" not in page and "<cap>" not in page and "<td><td>" not in page and "&lt;m&gt;" in page
    assert '<img src="dir%20%22x%22/a%20b.png" alt="&lt;caption&gt;">' in page
    assert "<p>a &lt; b &amp; c</p>" in page and "<code>x&lt;y</code>" in page


# --- the page in a real browser --------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Injected at the top of a copy of the page: records load failures and console errors, then, after the
# load event, whether every image decoded (naturalWidth > 0), as attributes that --dump-dom shows.
CHECK_SCRIPT = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  window.__errors.push(t && t.tagName ? 'could not load ' + t.tagName.toLowerCase() + ' ' + (t.getAttribute('src') || t.getAttribute('href')) : 'error: ' + e.message);
}, true);
['error', 'warn'].forEach(function (level) {
  var original = console[level];
  console[level] = function () { window.__errors.push('console.' + level + ': ' + Array.prototype.join.call(arguments, ' ')); original.apply(console, arguments); };
});
window.addEventListener('load', function () {
  var broken = Array.prototype.filter.call(document.images, function (i) { return !i.complete || i.naturalWidth === 0; });
  var root = document.documentElement;
  root.setAttribute('data-images', String(document.images.length));
  root.setAttribute('data-broken', JSON.stringify(broken.map(function (i) { return i.getAttribute('src'); })));
  root.setAttribute('data-errors', JSON.stringify(window.__errors));
});
</script>"""


def load_in_chromium(page: Path, tmp_path: Path) -> tuple[str, str]:
    """(DOM after the load event, Chromium's stderr) for a copy of `page` with CHECK_SCRIPT injected."""
    checked = page.with_name("index.check.html")
    checked.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + CHECK_SCRIPT, 1), encoding="utf-8")
    try:
        run = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=15000",
                              "--enable-logging=stderr", "--v=0", "--dump-dom", checked.resolve().as_uri()],
                             capture_output=True, text=True, timeout=120)
    finally:
        checked.unlink()
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout, run.stderr


def test_load_in_chromium_catches_a_broken_image_and_a_console_error(tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); the page's browser check needs it")
    page = tmp_path / "index.html"
    page.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body><img src="missing.png">'
                    '<script>console.error("oops")</script></body></html>', encoding="utf-8")
    dom, stderr = load_in_chromium(page, tmp_path)
    assert 'data-broken="[&quot;missing.png&quot;]"' in dom
    assert "console.error: oops" in dom and "could not load img missing.png" in dom
    assert '"oops"' in stderr and ":CONSOLE" in stderr


def test_the_page_loads_in_headless_chromium_with_no_broken_image_and_no_console_error(quick_demo, tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); the page's browser check needs it")
    out, _, summary, _ = quick_demo
    dom, stderr = load_in_chromium(out / "index.html", tmp_path)
    images = re.search(r'data-images="(\d+)"', dom)
    assert images, "the load event never fired:\n" + dom[:500]
    assert int(images.group(1)) == sum(len(s["images"]) for s in summary["sections"]) > 0
    assert 'data-broken="[]"' in dom, re.search(r'data-broken="[^"]*"', dom).group(0)
    assert 'data-errors="[]"' in dom, html.unescape(re.search(r'data-errors="[^"]*"', dom).group(0))
    console = [line for line in stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
