"""The page of ``aekit demo``: its parts' results rendered as one self-contained HTML file.

The page's skeleton and its CSS are package data (``aekit/templates/demo_page.html`` and
``demo_page.css``), filled with :class:`string.Template`; everything that came from a part (titles, text,
captions, table cells, errors) is escaped with :func:`html.escape` here before it goes in. The CSS is
inlined and the page has no scripts, so it opens from disk with no server and no network.
"""

from __future__ import annotations

import html
import re
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING
from urllib.parse import quote

import numpy as np

if TYPE_CHECKING:  # only for the annotations
    from .demo_parts import PartResult

TEMPLATE_FOLDER = "templates"
PAGE_TEMPLATE = "demo_page.html"
PAGE_CSS = "demo_page.css"

NEXT_STEPS = """The model this demo trained is in `{model}`, and it is now the default for every command that takes `--model`.
Train one on your own images (a folder, CelebA from the Hugging Face hub, or any image data set there), then use the same commands on it:"""

NEXT_COMMANDS = """aekit train --data ~/photos/faces/ --val-fraction 0.1 --epochs 20 --out runs/mine
aekit train --data celeba --limit 3000 --epochs 100 --out runs/celeba     # the article's run (needs the hub)
aekit compress ~/photos/faces/ --model runs/mine --out faces.npz --report
aekit embed ~/photos/faces/ --model runs/mine --out feats.npz && aekit umap feats.npz --out umap.png
aekit generate --model runs/mine --n 25 --out grid.png
aekit plugins                                                              # everything installed"""


def _package_text(name: str) -> str:
    """A text file shipped in ``aekit/templates/``."""
    return files("aekit").joinpath(TEMPLATE_FOLDER, name).read_text(encoding="utf-8")


def _text_html(text: str) -> str:
    """Plain text to paragraphs: escaped, blank lines split paragraphs, `code` in backticks."""
    out = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        if not paragraph.strip():
            continue
        escaped = html.escape(paragraph.strip())
        escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
        out.append(f"<p>{escaped}</p>")
    return "\n".join(out)


def _cell(value) -> str:
    if isinstance(value, bool) or value is None:
        return html.escape(str(value if value is not None else ""))
    if isinstance(value, float):
        return html.escape(f"{value:.4g}")
    if isinstance(value, np.floating):
        return html.escape(f"{float(value):.4g}")
    return html.escape(str(value))


def _table_html(caption, header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><caption>{html.escape(str(caption))}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _src(path: str) -> str:
    return html.escape(quote(path, safe="/"), quote=True)


def _failed_section_html(result: PartResult, anchor: str) -> tuple[str, str]:
    """(table-of-contents entry, section) for a part that raised."""
    title = result.section.title if result.section else result.name
    toc = f'<li><a href="#{anchor}">{html.escape(title)}</a> <span class="badge fail">failed</span></li>'
    block = (f'<section id="{anchor}" class="failed"><h2>{html.escape(title)}<span class="badge fail">failed</span></h2>'
             f'<p>The demo part <code>{html.escape(result.name)}</code> from plugin <code>{html.escape(result.plugin)}</code> '
             f'raised an error; the other parts ran normally.</p><p class="error">{html.escape(result.error)}</p></section>')
    return toc, block


def _section_html(result: PartResult, anchor: str, is_intro: bool) -> tuple[str, str]:
    """(table-of-contents entry, section) for a part (or a training section) that ran."""
    section = result.section
    toc = f'<li><a href="#{anchor}">{html.escape(section.title)}</a></li>'
    parts = [f'<section id="{anchor}"><h2>{html.escape(section.title)}</h2>']
    if section.text:
        parts.append(_text_html(section.text))
    for caption, header, rows in section.tables:
        parts.append(_table_html(caption, header, rows))
    for path, caption in result.images:
        alt = html.escape(caption or Path(path).name, quote=True)
        parts.append(f'<figure><img src="{_src(path)}" alt="{alt}">'
                     + (f"<figcaption>{html.escape(caption)}</figcaption>" if caption else "") + "</figure>")
    if is_intro:
        origin = f"trained in {result.elapsed_s:.0f} s" if result.elapsed_s else ""
    else:
        origin = (f"demo part <code>{html.escape(result.name)}</code> from plugin <code>{html.escape(result.plugin)}</code>, "
                  f"{result.elapsed_s:.1f} s")
    parts.append(f'<p class="small">{origin}</p></section>' if origin else "</section>")
    return toc, "".join(parts)


def render_page(results: list[PartResult], intro: list[PartResult], info: dict) -> str:
    """The whole page: `intro` sections (training) first, then each part; every text escaped.

    Parameters
    ----------
    results : the plugin parts, in the order they ran.
    intro : sections shown before them (the training runs).
    info : ``aekit_version``, ``created``, ``seed``, ``quick``, ``elapsed_s`` and ``model_dir_shown``.
    """
    toc = []
    blocks = []
    for result in intro + results:
        anchor = "part-" + result.folder
        if result.error is not None:
            entry, block = _failed_section_html(result, anchor)
        else:
            entry, block = _section_html(result, anchor, is_intro=result in intro)
        toc.append(entry)
        blocks.append(block)
    failed = sum(1 for r in results if r.error is not None)
    status = (f'<span class="badge ok">all {len(results)} parts ran</span>' if not failed
              else f'<span class="badge fail">{failed} of {len(results)} parts failed</span>')
    meta = html.escape(f"aekit {info['aekit_version']} · {info['created']} · seed {info['seed']}"
                       f"{' · quick mode (tiny sizes)' if info['quick'] else ''} · {info['elapsed_s']:.0f} s in all")
    # one pass: a `$` in a substituted value is never read as a placeholder
    return Template(_package_text(PAGE_TEMPLATE)).substitute(
        css=_package_text(PAGE_CSS), status=status, meta=meta, toc="".join(toc), sections="\n".join(blocks),
        next_steps=_text_html(NEXT_STEPS.format(model=info["model_dir_shown"])),
        next_commands=html.escape(NEXT_COMMANDS.format(model=info["model_dir_shown"])))
