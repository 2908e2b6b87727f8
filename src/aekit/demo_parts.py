"""The parts of ``aekit demo``: what a part gets (``DemoContext``), what it returns (``DemoSection``), and
running the registered parts one by one, a failing part shown as a failed section (see ``aekit.demo``)."""

from __future__ import annotations

import os
import re
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import click
import numpy as np
import torch
from PIL import Image

from . import io
from .errors import AekitError, first_line
from .images import image_grid, to_uint8_hwc
from .pixels import to_signed
from .registry import get_registry

DEFAULT_ORDER = 100
PAGE_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg")


@dataclass
class DemoSection:
    """What a demo part returns: one section of the page.

    ``text`` is plain text (escaped); a blank line starts a new paragraph and ```code``` in backticks is
    shown as code. ``images`` are ``(path, caption)`` with the path relative to the part's folder
    (``ctx.out``); ``tables`` are ``(caption, header, rows)``, cells being text or numbers (floats are
    shown with 4 significant digits; format them yourself for anything else).
    """

    title: str
    text: str = ""
    images: list[tuple[str, str]] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[Any]]]] = field(default_factory=list)


@dataclass
class DemoContext:
    """Everything a demo part gets: its folder, the trained models and the data."""

    out: Path  # this part's own folder (exists; write the part's files here)
    model: Any  # the trained small aekit Autoencoder (eval mode, CPU or the demo's device)
    model_dir: Path
    denoiser: Any | None  # the same model fine-tuned on noisy inputs, or None when it was not trained
    denoiser_dir: Path | None
    images: Any  # held-out faces: uint8 numpy (N, 3, S, S), never seen in training
    labels: dict  # attribute name -> (N,) 0/1 int array, for `images`
    train_images: Any  # the training faces, uint8 (M, 3, S, S)
    train_labels: dict
    seed: int = 0
    quick: bool = False  # tiny sizes (tests): keep the part fast and small
    root: Path | None = None  # the demo folder (index.html is there)
    noise: str | None = None  # the noise spec the denoiser was trained on
    log: Callable[[str], None] = print

    def hwc(self, images) -> Any:
        """uint8 (N, 3, S, S) images -> (N, S, S, 3), as pictures and `image_grid` want them."""
        return np.ascontiguousarray(np.asarray(images).transpose(0, 2, 3, 1))

    def encode(self, images, batch_size: int = 256):
        """float32 (N, latent_dim) numpy latents of uint8 (N, 3, S, S) images."""
        # to_signed copies: the images may be read-only
        return self.model.encode(to_signed(images), batch_size=batch_size).float().numpy()

    def decode(self, latents):
        """uint8 (N, S, S, 3) pictures of latents."""
        return to_uint8_hwc(self.model.decode(latents))

    def save_picture(self, name: str, picture) -> str:
        """Save a PIL image (or an (H, W, 3) uint8 array) as `name` in the part's folder; returns `name`."""
        if isinstance(picture, np.ndarray):
            picture = Image.fromarray(picture)
        path = self.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        io.save_image(path, picture)
        return name

    def save_grid(self, name: str, rows, row_labels=None, title: str | None = None, scale: int = 2) -> str:
        """`aekit.images.image_grid` of rows of (N, S, S, 3) uint8 pictures, saved as `name`; returns `name`."""
        return self.save_picture(name, image_grid(list(rows), row_labels, title=title, scale=scale))

    def save_figure(self, name: str, figure, **params) -> str:
        """Save a matplotlib Figure as `name` in the part's folder; returns `name`."""
        path = self.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        io.save_figure(path, figure, **params)
        return name


@dataclass
class PartResult:
    """One part after it ran: its section or its error."""

    name: str
    plugin: str
    folder: str
    order: int
    section: DemoSection | None = None
    error: str | None = None
    elapsed_s: float = 0.0
    images: list[tuple[str, str]] = field(default_factory=list)  # paths relative to the demo folder


# --- running the parts -------------------------------------------------------------------------------


def demo_parts(registry=None, only: list[str] | None = None):
    """The registered demo parts, in order (then name); `only` keeps those names (unknown: an error)."""
    registry = registry or get_registry()
    entries = registry.entries("demo")
    if only:
        known = {e.name for e in entries}
        unknown = [n for n in only if n not in known]
        if unknown:
            raise AekitError(f"unknown demo part(s) {', '.join(map(repr, unknown))} "
                             f"(installed: {', '.join(sorted(known)) or 'none'})")
        entries = [e for e in entries if e.name in only]
    return sorted(entries, key=lambda e: (_order(e), e.name))


def _order(entry) -> int:
    try:
        return int(entry.extra.get("order", DEFAULT_ORDER))
    except (TypeError, ValueError):
        return DEFAULT_ORDER


def folder_name(name: str) -> str:
    """A safe folder name for a part."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "part"


def one_line(exc: BaseException) -> str:
    text = first_line(exc)
    return type(exc).__name__ if text == type(exc).__name__ else f"{type(exc).__name__}: {text}"


def _as_section(value) -> DemoSection:
    if isinstance(value, DemoSection):
        return value
    if isinstance(value, dict) and "title" in value:
        return DemoSection(**{k: value[k] for k in ("title", "text", "images", "tables") if k in value})
    raise TypeError(f"returned {type(value).__name__}, expected an aekit.demo.DemoSection")


def _check_section(section: DemoSection, part_dir: Path, root: Path) -> list[tuple[str, str]]:
    """Validate a returned section; the images as (path relative to the demo folder, caption)."""
    if not isinstance(section.title, str) or not section.title.strip():
        raise ValueError("the section has no title")
    if not isinstance(section.text, str):
        raise TypeError("the section's text must be a string")
    images = []
    for item in section.images:
        path, caption = (item, "") if isinstance(item, (str, Path)) else tuple(item)
        target = (part_dir / path).resolve()
        if root.resolve() not in target.parents:
            raise ValueError(f"image {str(path)!r} is outside the demo folder")
        if not target.is_file():
            raise FileNotFoundError(f"image {str(path)!r} was not written")
        if target.suffix.lower() not in PAGE_IMAGE_SUFFIXES:
            raise ValueError(f"image {str(path)!r} is not a picture a browser shows ({', '.join(PAGE_IMAGE_SUFFIXES)})")
        images.append((target.relative_to(root.resolve()).as_posix(), str(caption)))
    for table in section.tables:
        caption, header, rows = table
        for row in rows:
            if len(row) != len(header):
                raise ValueError(f"table {caption!r}: a row has {len(row)} cells for {len(header)} columns")
    return images


def run_parts(entries, make_context: Callable[[Path], DemoContext], root: Path, seed: int,
              log: Callable[[str], None] = print) -> list[PartResult]:
    """Run each part into its own folder; a failing part becomes a failed PartResult."""
    results = []
    for number, entry in enumerate(entries, 1):
        result = PartResult(entry.name, entry.plugin, folder_name(entry.name), _order(entry))
        part_dir = root / result.folder
        log(f"[{number}/{len(entries)}] {entry.name} ({entry.plugin}): {entry.help or 'running'}")
        t0 = time.perf_counter()
        try:
            if part_dir.exists():
                shutil.rmtree(part_dir)
            part_dir.mkdir(parents=True)
            ctx = make_context(part_dir)
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            section = _as_section(entry.obj(ctx))
            result.images = _check_section(section, part_dir, root)
            result.section = section
        except Exception as exc:  # a broken part must never take the demo down
            result.error = one_line(exc)
            if _debug():
                traceback.print_exc()
        result.elapsed_s = round(time.perf_counter() - t0, 2)
        status = f"FAILED: {result.error}" if result.error else "done"
        log(f"[{number}/{len(entries)}] {entry.name}: {status} ({result.elapsed_s:.1f} s)")
        results.append(result)
    return results


def _debug() -> bool:
    """--debug or AEKIT_DEBUG: print a failing part's traceback too."""
    ctx = click.get_current_context(silent=True)
    return bool(os.environ.get("AEKIT_DEBUG")) or bool(ctx is not None and (ctx.find_root().obj or {}).get("debug"))
