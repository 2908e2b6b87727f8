"""The ``aekit umap`` command (the layout, colours and outputs are in the package)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from aekit.alignment import align_option
from aekit.command_tools import check_output_path, echo_skipped
from aekit.errors import AekitError

from . import (colour_values, default_epochs, draw, encode_thumbnail, html_page, layout, placements_of_rows, save_coords,
               spread_sample)

ALIGN_HELP = ("How the thumbnails are cut from the images: by default as each row of the features file says (face N "
              "of its photo, found and aligned again as `aekit embed --align` found it, or the whole image); off: "
              "each row's whole photo; on or auto: the photos' faces found so, matched to the rows by face index "
              "(a row that gives no face, e.g. an image without one under on, has no thumbnail and is listed).")


_rows_align_option = align_option(default=None, help=ALIGN_HELP)  # no default: the rows say what they are


@click.command("umap")
@click.argument("features_file", metavar="FEATURES.npz", type=click.Path())
@click.option("--out", "-o", type=click.Path(), default=None, help="PNG (or .jpg, .pdf) picture to write.")
@click.option("--color-by", "color_by", default=None, metavar="NAME|cluster",
              help="Colour points by this label, or by 'cluster' (with --clusters).")
@click.option("--clusters", type=click.Path(dir_okay=False), default=None, help="clusters.csv from `aekit cluster`.")
@click.option("--thumbnails", type=click.IntRange(min=0), default=0, show_default=True,
              help="Draw this many face thumbnails at spread-out points.")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives the same picture.")
@click.option("--parallel", is_flag=True, help="Use every core (faster on big inputs, but not reproducible; ignores --seed).")
@click.option("--coords", type=click.Path(), default=None, help="Save the 2-D coordinates to this .npz.")
@click.option("--html", type=click.Path(), default=None, help="Write an interactive, self-contained HTML page.")
@click.option("--html-images", type=click.IntRange(min=0), default=5000, show_default=True,
              help="At most this many points carry an embedded thumbnail in the HTML page.")
@click.option("--n-neighbors", type=click.IntRange(min=2), default=15, show_default=True)
@click.option("--min-dist", type=click.FloatRange(min=0.0), default=0.1, show_default=True)
@click.option("--metric", default="euclidean", show_default=True, help="Any metric umap-learn knows (euclidean, cosine, ...).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Optimisation epochs (default: 500 up to 10,000 points, then 200).")
@click.option("--images", multiple=True, metavar="INPUT", help="Where the images are now (default: where `aekit embed` read them).")
@_rows_align_option
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def umap_cmd(features_file, out, color_by, clusters, thumbnails, seed, parallel, coords, html, html_images, n_neighbors,
             min_dist, metric, epochs, images, align, quiet):
    """Lay the features out in 2-D with UMAP: a picture, the coordinates and an interactive HTML page.

    The features are standardised first. Colour by a label (--color-by Male) or by clusters
    (--clusters clusters.csv); thumbnails and the HTML page read the images from where
    `aekit embed` found them (or --images).

    When the rows are faces found in photos (`aekit embed --align`), each point is one face: the
    coordinates file and the HTML page record each point's photo, face index and box, and the
    thumbnails show the aligned faces (see --align).

    \b
    Examples:
      aekit umap feats.npz --out umap.png --color-by Male --thumbnails 60
      aekit cluster feats.npz --k 8 --out clusters.csv && aekit umap feats.npz --out umap.png --clusters clusters.csv
      aekit umap feats.npz --coords umap.npz --html umap.html --seed 1
      aekit embed photos/ --align on -o faces.npz && aekit umap faces.npz --html faces.html   # a point per face
    """
    from aekit import io
    from aekit.features import load_features

    if not (out or coords or html):
        raise click.UsageError("nothing to write: give --out PICTURE, --coords FILE.npz and/or --html PAGE.html")
    out = check_output_path(out, "--out") if out else None
    if out is not None and out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".pdf"):
        raise click.BadParameter(f"{out}: use a .png, .jpg or .pdf name", param_hint="--out")
    coords_path = check_output_path(coords, "--coords") if coords else None
    html_path = check_output_path(html, "--html") if html else None
    feats = load_features(features_file)
    values, legend, title = colour_values(feats, color_by, clusters)
    settings = {"seed": None if parallel else seed, "n_neighbors": n_neighbors, "min_dist": min_dist, "metric": metric,
                "epochs": epochs or default_epochs(len(feats)), "standardized": True}
    if not quiet:
        click.echo(f"UMAP of {len(feats)} x {feats.X.shape[1]} features ({settings['epochs']} epochs)...", err=True)
    try:
        xy = layout(feats.X, None if parallel else seed, n_neighbors, min_dist, metric, epochs, verbose=not quiet)
    except ValueError as exc:  # e.g. an unknown metric
        raise AekitError(f"UMAP failed: {exc}") from None
    placements = placements_of_rows(feats)  # None: rows of whole images, as before --align
    if coords_path:
        save_coords(coords_path, xy, feats, settings, placements)
        click.echo(f"wrote {coords_path}")
    want_pictures = (out is not None and thumbnails) or html_path is not None
    source = None
    size = int(feats.meta.get("image_size") or 64)
    if want_pictures:
        from aekit_embed.lookup import images_for

        if align is None:
            source, why = images_for(feats, images)
        else:  # faces found again under this mode (off: each row's whole photo)
            source, why = images_for(feats, images, align_mode=align, size=size)
        if source is None:
            click.echo(f"note: no thumbnails: {why}", err=True)
    failed = []  # thumbnails that could not be made (--align on: an image without a face...), listed at the end
    rng_seed = 0 if parallel else seed
    heading = f"UMAP of {Path(features_file).name} ({len(feats)} images" + (f", coloured by {title}" if title else "") + ")"
    if out is not None:
        pictures = {}
        if source is not None and thumbnails:
            chosen = spread_sample(xy, thumbnails, rng_seed)
            pictures = _read(source, chosen, size, quiet, "thumbnails", failed)
        io.save_figure(out, draw(xy, values, legend, title, pictures, heading), dpi=100)
        click.echo(f"wrote {out}")
    if html_path is not None:
        urls = {}
        if source is not None and html_images:
            chosen = np.sort(np.random.default_rng(rng_seed).permutation(len(feats))[: html_images])
            urls = {i: encode_thumbnail(image)
                    for i, image in _read(source, chosen, min(size, 64), quiet, "html thumbnails", failed).items()}
        io.write_text(html_path, html_page(xy, feats, values, legend, title, urls, heading, placements))
        click.echo(f"wrote {html_path}")
    if failed and align != "off":  # off: as before --align, thumbnails that cannot be read are left out silently
        echo_skipped(sorted(set(failed), key=failed.index))  # a point in both the picture and the page: listed once


def _read(source, indices, size, quiet, desc, failed=None):
    from tqdm.auto import tqdm

    out = {}
    bar = tqdm(total=len(indices), desc=desc, unit="img", disable=quiet, leave=False)
    for i, image, error in source.iter_images([int(i) for i in indices], size):
        bar.update()
        if error is None and image.ndim == 3 and image.shape[2] == 3:
            out[int(i)] = image
        elif error is not None and failed is not None:
            failed.append(error)
    bar.close()
    return out
