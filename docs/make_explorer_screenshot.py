"""Take docs/explorer.png: `aekit serve`'s page with faces-64, faces-64-denoise and a celeba-10k test face.

    python docs/make_explorer_screenshot.py [--face ../shared/data/celeba-10k/images/009001.jpg] [--out docs/explorer.png]

The page is what `aekit serve --features index.npz` shows after uploading --face, then --face-b as
the other end of the interpolation, and moving three sliders; the index holds the features of the
celeba-10k test faces 9101-10000 (`aekit embed IMAGES/[9100:]`, into a temporary folder), which
hold neither face. Needs the serve extra and playwright (both in `.[dev]`) and Debian's chromium
(never `playwright install`). The faces are read from the data set for the picture only; no data set
image is copied into the repository.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FACE = ROOT.parent / "shared" / "data" / "celeba-10k" / "images" / "009001.jpg"
EDITS = {"Smiling": 1.5, "Eyeglasses": 1.2, "pc1": -0.8}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--face", type=Path, default=DEFAULT_FACE, help="a face image (a celeba-10k test face)")
    parser.add_argument("--face-b", type=Path, default=DEFAULT_FACE.with_name("009010.jpg"),
                        help="a second face, the other end of the interpolation")
    parser.add_argument("--index", default=str(DEFAULT_FACE.parent) + "/[9100:]",
                        help="the faces whose nearest ones are shown (any `aekit embed` INPUT; '' for none)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "explorer.png")
    parser.add_argument("--width", type=int, default=1240)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium is not installed (Debian: apt-get install chromium)")
    import aekit
    from aekit.features import load_features
    from aekit_serve.app import build_app

    model, denoiser = aekit.load("faces-64"), aekit.load("faces-64-denoise")
    features = None
    with tempfile.TemporaryDirectory() as folder:
        if args.index:
            index = Path(folder) / "index.npz"
            subprocess.run([sys.executable, "-m", "aekit", "embed", args.index, "--model", "faces-64", "--features",
                            "latent", "--out", str(index), "-q"], check=True)
            features = load_features(index)
        app = build_app(model, denoiser=denoiser, features=features)
        return shoot(app, args, chromium)


def shoot(app, args, chromium) -> int:
    from playwright.sync_api import sync_playwright

    from aekit_serve.app import running

    directions = app.state.explorer.directions
    if directions is None:
        print(f"note: {app.state.explorer.directions_note}; the picture shows no sliders", file=sys.stderr)
    with running(app) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": args.width, "height": 900}, device_scale_factor=1)
        problems = []  # the page must load nothing from elsewhere and log no error
        page.on("request", lambda r: problems.append(f"request to {r.url}")
                if urlparse(r.url).scheme != "data" and urlparse(r.url).hostname not in ("127.0.0.1", "localhost") else None)
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        for face, end in ((args.face_b, "#set-b"), (args.face, "#set-a")):
            before = page.get_attribute("#reconstruction", "src")
            page.set_input_files("#upload", str(face))
            page.wait_for_function("s => document.getElementById('reconstruction').src !== s", arg=before or "")
            page.click(end)
        page.wait_for_function("() => document.querySelectorAll('#strip img').length > 2")
        for name, amount in EDITS.items():
            if directions is not None and name in directions.names:
                slider = page.locator(f"input.direction[data-direction='{name}']")
                slider.evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", amount)
        first = next((n for n in directions.names if n in EDITS), None) if directions is not None else None
        if first:  # the sliders' list scrolls: show the first one moved at its top
            page.locator(f"input.direction[data-direction='{first}']").evaluate(
                "el => { el.parentElement.scrollTop = el.offsetTop - el.parentElement.offsetTop - 4; }")
        page.mouse.move(0, 0)
        page.wait_for_timeout(1500)  # the last slider's decode, the denoiser, the samples and the neighbours
        page.wait_for_function("() => !document.querySelector('.busy')")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out), full_page=True)
        browser.close()
    if problems:
        sys.exit("the page misbehaved:\n" + "\n".join(problems))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
