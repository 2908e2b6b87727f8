"""UMAP pictures of features: ``aekit umap feats.npz --out umap.png``.

The features (from ``aekit embed``) are standardised and laid out in 2-D by umap-learn (imported only
when the command runs: it takes seconds to import). The picture is coloured by a label or by the
clusters of ``aekit cluster``, optionally with face thumbnails at a spread-out sample of points;
``--coords`` saves the 2-D coordinates and ``--html`` writes one self-contained page (canvas and a
little JavaScript, no network) where hovering a point shows its face and labels. A fixed ``--seed``
gives the same coordinates and the same picture every time.

The ``--coords`` ``.npz`` holds ``coords`` (N, 2) float32, ``paths`` (N,) str (the features file's),
``model_id`` and ``meta`` (JSON: the UMAP settings and the features file). When the features' rows are
faces found in photos (``aekit embed --align``), it also holds ``photo`` (N,) str, ``face`` (N,) int64
(-1: the whole image) and ``box`` (N, 4) float32 (x, y, width, height; NaN for a whole image), with
``align`` in ``meta``; the HTML page shows them beside each point.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys

import click
import numpy as np

from aekit import hookimpl
from aekit.errors import AekitError

COORDS_FORMAT = "aekit-umap"
MAX_CATEGORIES = 20  # more distinct values than this are drawn with a colour bar
UNKNOWN_COLOUR = "#b0b0b0"

# the plugins whose modules this one imports (aekit refuses to load it without them)
AEKIT_REQUIRES = ("embed",)  # the cluster CSV reader and the image lookup


@hookimpl
def register_commands(register):
    from .command import umap_cmd

    register(umap_cmd)


# --- the layout ------------------------------------------------------------------------------------


def default_epochs(n: int) -> int:
    """Optimisation epochs sized for the number of points (umap's own rule, with fewer for huge inputs)."""
    return 500 if n <= 10_000 else 200 if n <= 200_000 else 100


def layout(X: np.ndarray, seed: int | None = 0, n_neighbors: int = 15, min_dist: float = 0.1, metric: str = "euclidean",
           epochs: int | None = None, verbose: bool = False) -> np.ndarray:
    """(N, 2) float32 UMAP coordinates of standardised `X`; the same seed gives the same coordinates."""
    import warnings

    from sklearn.preprocessing import StandardScaler

    if len(X) < 5:
        raise AekitError(f"UMAP needs at least 5 images, got {len(X)}")
    Z = StandardScaler().fit_transform(np.asarray(X, dtype=np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba/pynndescent chatter on import and small inputs
        import umap

        reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(X) - 1), min_dist=min_dist, metric=metric,
                            random_state=seed, n_jobs=1 if seed is not None else -1, low_memory=True,
                            n_epochs=epochs or default_epochs(len(X)), verbose=verbose)
        with contextlib.redirect_stdout(sys.stderr):  # umap's progress lines go to stderr, beside the bars
            coords = reducer.fit_transform(Z)
    return np.asarray(coords, dtype=np.float32)


# --- colours -----------------------------------------------------------------------------------------


def colour_values(feats, color_by: str | None, clusters: str | None) -> tuple[np.ndarray | None, dict, str]:
    """(values (N,) int with -1 unknown, {value: legend text}, title) for --color-by."""
    if color_by is None and clusters:
        color_by = "cluster"
    if color_by is None:
        return None, {}, ""
    if color_by == "cluster" and (clusters or "cluster" not in feats.label_names):
        if not clusters:
            raise click.UsageError("--color-by cluster needs --clusters clusters.csv (written by `aekit cluster`)")
        from aekit_embed.cluster import read_clusters_csv

        values = read_clusters_csv(clusters, feats.paths)
        return values, {int(v): f"cluster {v}" for v in np.unique(values)}, "cluster"
    if color_by not in feats.label_names:
        known = ", ".join(feats.label_names) if feats.label_names else "none"
        raise AekitError(f"{feats.source}: no label {color_by!r} to colour by (labels: {known}; or 'cluster' with --clusters)")
    values = feats.target(color_by)
    names = feats.classes.get(color_by)
    known_values = np.unique(values[values >= 0])
    legend = {int(v): (names[v] if names and 0 <= v < len(names) else f"{color_by}={v}") for v in known_values}
    return values, legend, color_by


def palette(count: int) -> list[str]:
    """`count` distinct hex colours (tab10, then tab20)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [to_hex(cmap(i % cmap.N)) for i in range(count)]


def spread_sample(coords: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices of up to `count` points that lie apart from each other (for thumbnails that do not pile up)."""
    n = len(coords)
    count = min(count, n)
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    extent = float(np.ptp(coords, axis=0).max()) or 1.0
    threshold = 0.6 * extent / np.sqrt(count)
    chosen = [int(order[0])]
    for i in order[1:]:
        if len(chosen) == count:
            break
        if np.min(np.abs(coords[chosen] - coords[i]).max(axis=1)) > threshold:
            chosen.append(int(i))
    if len(chosen) < count:  # crowded: top up with random points
        taken = set(chosen)
        rest = [int(i) for i in order if int(i) not in taken]
        chosen += rest[: count - len(chosen)]
    return np.asarray(chosen, dtype=np.int64)


# --- outputs ---------------------------------------------------------------------------------------


def draw(coords, values, legend, title, thumbnails: dict[int, np.ndarray], heading: str):
    """A matplotlib Figure of the layout (no pyplot, so no GUI backend is involved)."""
    from matplotlib.figure import Figure
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    n = len(coords)
    figure = Figure(figsize=(10, 9), dpi=100)
    ax = figure.add_subplot()
    size = float(np.clip(3000.0 / n, 0.3, 30.0))
    colour_of = {}
    if values is None:
        ax.scatter(coords[:, 0], coords[:, 1], s=size, c="#1f77b4", alpha=0.8, linewidths=0)
    elif len(legend) <= MAX_CATEGORIES:
        colours = palette(len(legend))
        unknown = values < 0
        if unknown.any():
            ax.scatter(coords[unknown, 0], coords[unknown, 1], s=size, c=UNKNOWN_COLOUR, alpha=0.6, linewidths=0,
                       label=f"unknown ({int(unknown.sum())})")
        for colour, (value, text) in zip(colours, legend.items()):
            mask = values == value
            colour_of[value] = colour
            ax.scatter(coords[mask, 0], coords[mask, 1], s=size, c=colour, alpha=0.8, linewidths=0, label=f"{text} ({int(mask.sum())})")
        ax.legend(title=title, loc="best", markerscale=max(1.0, 6.0 / np.sqrt(size)), fontsize=8, title_fontsize=9, framealpha=0.85)
    else:
        known = values >= 0
        ax.scatter(coords[~known, 0], coords[~known, 1], s=size, c=UNKNOWN_COLOUR, alpha=0.6, linewidths=0)
        points = ax.scatter(coords[known, 0], coords[known, 1], s=size, c=values[known], cmap="viridis", alpha=0.8, linewidths=0)
        figure.colorbar(points, ax=ax, label=title)
    for i, image in thumbnails.items():
        zoom = 30.0 / image.shape[0]
        edge = colour_of.get(int(values[i]), "#444444") if values is not None else "#444444"
        box = AnnotationBbox(OffsetImage(image, zoom=zoom), (coords[i, 0], coords[i, 1]), frameon=True, pad=0.1,
                             bboxprops={"edgecolor": edge, "linewidth": 1.2})
        ax.add_artist(box)
    ax.set_title(heading, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    figure.tight_layout()
    return figure


def placements_of_rows(feats) -> dict[str, np.ndarray] | None:
    """Where each row of `feats` came from (``photo``, ``face``, ``box``, as ``aekit.alignment.placement_columns``),
    when the features file records it (``aekit embed --align`` auto / on); None for rows of whole images."""
    face = getattr(feats, "face", None)
    if face is None or getattr(feats, "photo", None) is None or getattr(feats, "box", None) is None:
        return None
    face = np.asarray(face, dtype=np.int64).reshape(-1)
    if str(feats.meta.get("align") or "off") == "off" and not (face >= 0).any():
        return None
    return {"photo": np.asarray(list(feats.photo), dtype=str).reshape(-1), "face": face,
            "box": np.asarray(feats.box, dtype=np.float32).reshape(-1, 4)}


def save_coords(path, coords, feats, settings: dict, placements: dict[str, np.ndarray] | None = None) -> None:
    """The 2-D coordinates as an .npz (atomic); with `placements` (`placements_of_rows`) each point's photo, face, box."""
    from aekit import io

    meta = {"format": COORDS_FORMAT, "format_version": 1, "features": str(feats.source), **settings}
    extra = {}
    if placements is not None:
        meta["align"] = str(feats.meta.get("align") or "")
        extra = {"photo": placements["photo"], "face": placements["face"], "box": placements["box"]}
    with io.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, coords=np.asarray(coords, dtype=np.float32), paths=np.asarray(feats.paths, dtype=str),
                     model_id=np.asarray(feats.model_id), meta=np.asarray(json.dumps(meta)), **extra)


def encode_thumbnail(image: np.ndarray, size: int = 64) -> str:
    """A data: URL of a small JPEG of `image`."""
    import io as bytesio

    from PIL import Image

    picture = Image.fromarray(image)
    if picture.width > size:
        picture = picture.resize((size, size), Image.BICUBIC)
    buffer = bytesio.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def html_page(coords, feats, values, legend, title, thumbnails: dict[int, str], heading: str,
              placements: dict[str, np.ndarray] | None = None) -> str:
    """One self-contained HTML page: a canvas of the points; hovering shows the face and labels (and, with
    `placements`, the photo, face index and box each point came from)."""
    n = len(coords)
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    unit = np.round((coords - lo) / span, 4)  # 0..1, y up
    colours = palette(len(legend)) if values is not None and len(legend) <= MAX_CATEGORIES else []
    if values is None:
        colour_index = [0] * n
        swatches, legend_rows = ["#1f77b4"], []
    elif colours:
        slot = {value: k + 1 for k, value in enumerate(legend)}
        colour_index = [slot.get(int(v), 0) for v in values]
        swatches = [UNKNOWN_COLOUR] + colours
        legend_rows = [[text, colours[k]] for k, text in enumerate(legend.values())]
        if (values < 0).any():
            legend_rows.append(["unknown", UNKNOWN_COLOUR])
    else:  # many values: a viridis ramp of 32 steps
        from matplotlib import colormaps
        from matplotlib.colors import to_hex

        ramp = [to_hex(colormaps["viridis"](k / 31)) for k in range(32)]
        known = values[values >= 0]
        low, high = (known.min(), known.max()) if len(known) else (0, 1)
        steps = np.clip(np.round((values - low) / max(high - low, 1) * 31), 0, 31).astype(int)
        colour_index = [int(s) + 1 if v >= 0 else 0 for s, v in zip(steps, values)]
        swatches = [UNKNOWN_COLOUR] + ramp
        legend_rows = [[f"{title} = {low}", ramp[0]], [f"{title} = {high}", ramp[-1]]]
    labels = {}
    for name in feats.label_names:
        column = feats.target(name, as_names=True) if name in feats.classes else feats.target(name)
        labels[name] = [str(v) if not isinstance(v, (int, np.integer)) else int(v) for v in column.tolist()]
    if values is not None and title not in labels:
        labels[title] = [int(v) for v in values.tolist()]
    data = {"x": unit[:, 0].tolist(), "y": unit[:, 1].tolist(), "c": colour_index, "swatches": swatches,
            "legend": legend_rows, "paths": feats.paths, "labels": labels,
            "images": {str(i): url for i, url in thumbnails.items()}, "title": heading}
    if placements is not None:  # JSON has no NaN: a whole image's box is null
        data["photo"] = [str(p) for p in placements["photo"]]
        data["face"] = [int(f) for f in placements["face"]]
        data["box"] = [[round(float(v), 1) for v in box] if np.isfinite(box).all() else None for box in placements["box"]]
    payload = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")  # no "</script>" or "<!--" inside
    return HTML_TEMPLATE.replace("__TITLE__", _escape(heading)).replace("__DATA__", payload)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font:13px system-ui,sans-serif;margin:12px;color:#222}
#wrap{position:relative;display:inline-block}
canvas{border:1px solid #ccc;cursor:crosshair}
#tip{position:absolute;display:none;pointer-events:none;background:#fff;border:1px solid #888;border-radius:4px;
padding:6px;box-shadow:0 2px 6px rgba(0,0,0,.25);max-width:260px;font-size:12px}
#tip img{display:block;width:96px;height:96px;image-rendering:pixelated;margin-bottom:4px}
#legend span{display:inline-block;width:11px;height:11px;margin:0 4px 0 12px;vertical-align:middle;border-radius:6px}
</style></head><body>
<h3 id="heading"></h3><div id="legend"></div>
<div id="wrap"><canvas id="plot"></canvas><div id="tip"></div></div>
<script id="data" type="application/json">__DATA__</script>
<script>
(function(){
"use strict";
var D=JSON.parse(document.getElementById("data").textContent);
document.getElementById("heading").textContent=D.title;
var legend=document.getElementById("legend");
D.legend.forEach(function(row){var s=document.createElement("span");s.style.background=row[1];
legend.appendChild(s);legend.appendChild(document.createTextNode(row[0]));});
var W=Math.min(900,window.innerWidth-40),H=Math.round(W*0.85),M=12;
var canvas=document.getElementById("plot"),ratio=window.devicePixelRatio||1;
canvas.width=W*ratio;canvas.height=H*ratio;canvas.style.width=W+"px";canvas.style.height=H+"px";
var ctx=canvas.getContext("2d");
var n=D.x.length,px=new Float32Array(n),py=new Float32Array(n);
for(var i=0;i<n;i++){px[i]=M+D.x[i]*(W-2*M);py[i]=H-M-D.y[i]*(H-2*M);}
var r=Math.max(1.2,Math.min(4,60/Math.sqrt(n)));
var base=document.createElement("canvas");base.width=canvas.width;base.height=canvas.height;
var bctx=base.getContext("2d");bctx.scale(ratio,ratio);bctx.globalAlpha=0.8;
for(var i=0;i<n;i++){bctx.fillStyle=D.swatches[D.c[i]];bctx.beginPath();bctx.arc(px[i],py[i],r,0,6.2832);bctx.fill();}
function draw(hit){ctx.setTransform(1,0,0,1,0,0);ctx.clearRect(0,0,canvas.width,canvas.height);ctx.drawImage(base,0,0);
ctx.setTransform(ratio,0,0,ratio,0,0);if(hit>=0){ctx.strokeStyle="#000";ctx.lineWidth=2;ctx.beginPath();ctx.arc(px[hit],py[hit],r+3,0,6.2832);ctx.stroke();}}
draw(-1);
var tip=document.getElementById("tip"),last=-1;
function esc(s){return String(s).replace(/[&<>"]/g,function(c){return{"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c];});}
canvas.addEventListener("mousemove",function(ev){
var b=canvas.getBoundingClientRect(),mx=ev.clientX-b.left,my=ev.clientY-b.top,best=-1,bd=144;
for(var i=0;i<n;i++){var dx=px[i]-mx,dy=py[i]-my,d=dx*dx+dy*dy;if(d<bd){bd=d;best=i;}}
if(best!==last){last=best;draw(best);}
if(best<0){tip.style.display="none";return;}
var html="";var img=D.images[String(best)];
if(img){html+='<img src="'+img+'" alt="">';}
html+="<b>"+esc(D.paths[best])+"</b>";
if(D.face&&D.face[best]>=0){var bx=D.box[best];html+="<br>face "+D.face[best]+" of "+esc(D.photo[best])+
(bx?" at "+bx[0]+", "+bx[1]+" ("+bx[2]+" x "+bx[3]+")":"");}
Object.keys(D.labels).forEach(function(k){html+="<br>"+esc(k)+": "+esc(D.labels[k][best]);});
tip.innerHTML=html;tip.style.display="block";
tip.style.left=Math.min(mx+14,W-200)+"px";tip.style.top=Math.min(my+14,H-60)+"px";});
canvas.addEventListener("mouseleave",function(){tip.style.display="none";last=-1;draw(-1);});
})();
</script></body></html>
"""




# --- `aekit demo` ------------------------------------------------------------------------------------


@hookimpl
def register_demos(register):
    from . import demo  # light: numpy; its work imports what it needs

    register("umap", demo.run, help="a UMAP picture of the held-out latents, coloured by an attribute", order=40)
