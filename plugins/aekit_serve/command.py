"""The ``aekit serve`` command: load what the explorer needs, bind the port, run uvicorn."""

from __future__ import annotations

import ipaddress
import socket

import click

from aekit.alignment import align_option
from aekit.command_tools import load_model_arg, model_option
from aekit.errors import AekitError, first_line

NONE = "none"
EXTRA = "pip install 'aekit[serve]'"


def require_serve_extra() -> None:
    """One line naming the extra when starlette, uvicorn or python-multipart is missing."""
    import importlib

    missing = []
    for modules, package in ((("starlette",), "starlette"), (("uvicorn",), "uvicorn"),
                             (("python_multipart", "multipart"), "python-multipart")):  # its module's new and old names
        for module in modules:
            try:
                importlib.import_module(module)
                break
            except ImportError:
                pass
        else:
            missing.append(package)
    if missing:
        raise AekitError(f"aekit serve needs {', '.join(missing)}: {EXTRA}")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), or a usage error saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise click.BadParameter(f"{host}: not an address of this machine ({first_line(exc)})", param_hint="--host") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart reuses the port at once
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise click.BadParameter(f"port {port} on {host} is in use; pick another (--port 0 picks a free one)",
                                     param_hint="--port") from None
        raise click.BadParameter(f"cannot listen on {host}:{port} ({exc.strerror or exc})", param_hint="--host") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host in ("::", "[::]") else host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def load_denoiser(denoiser: str | None):
    """(model or None, why none): --denoiser, else the pretrained denoiser when one is installed."""
    from aekit.pretrained import resolve_model

    if denoiser is not None and denoiser.strip().lower() == NONE:
        return None, "--denoiser none"
    if denoiser is not None:
        return load_model_arg(denoiser, task="denoise"), None
    try:
        choice = resolve_model(None, task="denoise")
        if choice.reason.startswith("no pretrained"):  # only the latest run: not necessarily a denoiser
            return None, "no pretrained denoiser installed; give --denoiser NAME_OR_DIR"
        return load_model_arg(None, task="denoise"), None
    except AekitError as exc:
        return None, f"no denoiser ({first_line(exc)})"


def index_model(features, model):
    """The model that embeds queries for a --features index: None when the explored model made it, else the
    features task's model (`aekit embed`'s default, e.g. faces-64-features) when that one made it, said on
    stderr; otherwise None, and the explorer refuses the index with a one-line error naming both."""
    from aekit import load, model_fingerprint
    from aekit.pretrained import resolve_model

    if features is None or features.model_id == model_fingerprint(model):
        return None
    try:
        choice = resolve_model(None, task="features")
        extractor = load(choice.spec)
    except AekitError:
        return None
    if model_fingerprint(extractor) != features.model_id:
        return None
    click.echo(f"{choice.describe()}, for the nearest faces", err=True)
    return extractor


@click.command("serve")
@model_option
@click.option("--denoiser", metavar="NAME_OR_DIR", default=None,
              help="The model of the denoising panel (default: the pretrained denoiser, if installed; `none` hides the panel).")
@click.option("--features", "features_file", type=click.Path(), default=None, metavar="FEATURES.npz",
              help="Show each face's nearest faces in this features file (from `aekit embed` with the same --model).")
@click.option("--gallery", "gallery_dir", type=click.Path(exists=True, file_okay=False), default=None, metavar="DIR",
              help="Add the images of this folder (at most 24) to the faces to pick from.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback lets other machines use the explorer.")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True, help="Port (0: any free one).")
@click.option("--max-upload-mb", "max_upload_mb", type=click.FloatRange(0, 1000, min_open=True), default=10.0,
              show_default=True, help="Refuse uploads larger than this (HTTP 413), counted while they are read.")
@click.option("--max-upload-mp", "max_upload_mp", type=click.FloatRange(0, 1000, min_open=True), default=40.0,
              show_default=True, help="Refuse images of more than this many million pixels (HTTP 413), read from the "
                                      "header before decoding (a JPEG counts at the reduced scale it is decoded at).")
@align_option
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default web browser.")
@click.option("--check", is_flag=True,
              help="Load everything and check the port, print what the page would show, and exit without serving.")
def serve(model_path, denoiser, features_file, gallery_dir, host, port, max_upload_mb, max_upload_mp, align,
          open_browser, check):
    """The explorer: a local web page to see a model's reconstructions, edits, samples and neighbours.

    Upload a photo (or pick a face from the gallery) and see its reconstruction; move sliders for the
    model's attribute directions and principal axes (`aekit directions fit`) and see the face change,
    in the photo itself for an upload (its largest face is aligned first, --align, and the change is
    put back under a soft mask, as `aekit edit` does); add noise and see the denoiser remove it;
    draw samples from the fitted prior; interpolate between two faces; and, with --features, see the
    nearest faces of an index. The page loads nothing from outside this machine, and no other web
    page can use the server (a POST needs the header `X-Aekit: 1`, which the page sends). It listens
    on 127.0.0.1 (this machine only) unless --host says otherwise. Stop it with Ctrl-C.

    \b
    Examples:
      aekit serve                                   # faces-64 and faces-64-denoise, http://127.0.0.1:7860/
      aekit serve --model runs/celeba --port 8000 --open
      aekit serve --features faces.npz --gallery faces/   # nearest faces from `aekit embed faces/ --out faces.npz`
      aekit serve --model runs/synth --denoiser none --check
    """
    require_serve_extra()  # before any loading: the missing extra is the whole answer
    from aekit.features import load_features

    from .app import LOOPBACK_HOSTS, build_app
    from .explorer import Explorer

    loopback = is_loopback(host)
    if not loopback:
        click.echo(f"warning: --host {host} is not loopback: anyone who can reach this machine on port {port} can use "
                   "the explorer", err=True)
    sock = bind(host, port)  # before loading models: a busy port fails at once
    try:
        if check:
            sock.close()
        model = load_model_arg(model_path)
        features = load_features(features_file) if features_file else None
        feature_model = index_model(features, model)
        denoiser_model, no_denoiser = load_denoiser(denoiser)
        explorer = Explorer(model, denoiser=denoiser_model, features=features, features_path=features_file,
                            feature_model=feature_model,
                            gallery_dir=gallery_dir, log=lambda message: click.echo(message, err=True), align=align)
        info = explorer.info()
        attributes = sum(d["kind"] == "attribute" for d in info["directions"])
        principal = sum(d["kind"] == "principal" for d in info["directions"])
        lines = [f"model {info['model']} ({info['model_id'][:12]}, {info['image_size']}x{info['image_size']}, "
                 f"{info['latent_dim']}-d latent)",
                 f"directions: {attributes} attribute(s), {principal} principal axes" if info["directions"]
                 else info["directions_note"],
                 f"denoiser: {info['denoiser']}" if info["has_denoiser"] else f"denoiser: none ({no_denoiser})",
                 f"prior: {info['sampler']}" + (f" ({info['prior_note']})" if info["prior_note"] else ""),
                 f"nearest faces: {info['index_size']} faces of {features_file}" if info["has_index"]
                 else "nearest faces: none (give --features FEATURES.npz)",
                 f"uploads: the largest face aligned by {getattr(explorer.aligner, 'name', 'the aligner')} "
                 f"(--align {align}), edits shown in the photo" if align != "off"
                 else "uploads: taken as they are (--align off), edits shown in the photo"]
        if info["index_note"]:
            lines.append(f"note: {info['index_note']}")
        for line in lines:
            click.echo(line, err=True)
        url = url_of(sock, host) if not check else f"http://{host}:{port}/"
        if check:
            click.echo(f"ready to serve {url} (--check: not serving)")
            return
        allowed = (LOOPBACK_HOSTS + ([host] if host not in LOOPBACK_HOSTS else [])) if loopback else None
        app = build_app(model, explorer=explorer, max_upload_mb=max_upload_mb, max_upload_mp=max_upload_mp,
                        allowed_hosts=allowed)
        _run(app, sock, url, open_browser)
    finally:
        sock.close()


def _run(app, sock, url: str, open_browser: bool) -> None:
    import threading
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    click.echo(f"serving the explorer on {url}  (Ctrl-C stops it)")
    if open_browser:
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    server.run(sockets=[sock])
    click.echo("stopped", err=True)
