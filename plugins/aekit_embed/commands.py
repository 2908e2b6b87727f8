"""The ``aekit embed``, ``aekit classify``, ``aekit cluster`` and ``aekit similar`` commands.

The work behind them lives beside this module: ``fast_encoder`` (the batched inference copy of the
model), ``prefetch`` (reduced JPEG decoding, decoding ahead), ``sharding`` (torchrun shares), ``labels``
and ``evaluate``. What tests and benchmarks import from here (``FastEncoder``, ``fold_batchnorm``,
``prefetch``, ``reduced_files``, ``shard_indices``, ...) is re-exported.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import numpy as np

from aekit.alignment import align_option
from aekit.command_tools import (check_output_path, cli_device, finish_skipped, load_model_arg, model_option,
                                 refuse_existing_output)
from aekit.errors import AekitError
from aekit.text import printable, tsv_line
from aekit.runtime import resolve_runtime, runtime_option

from .fast_encoder import FastEncoder, encode_share, fold_batchnorm
from .labels import labels_for_keys
from .prefetch import prefetch, reduced_files
from .sharding import encode_aligned_share, encode_process_share, gather_shares, shard_indices

__all__ = ["FastEncoder", "classify", "cluster", "embed", "similar", "encode_process_share", "encode_share", "fold_batchnorm",
           "gather_shares", "labels_for_keys", "prefetch", "reduced_files", "shard_indices"]


# --- embed ---------------------------------------------------------------------------------------------


@click.command("embed")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@model_option(task="features")
@click.option("--out", "-o", required=True, type=click.Path(), help="The features .npz to write.")
@click.option("--labels", "labels_csv", type=click.Path(), default=None, metavar="FILE.csv",
              help="Labels from a CSV keyed by file name (first column), like CelebA's attributes.csv.")
@click.option("--label-column", "label_columns", multiple=True, metavar="COL",
              help="Keep only this label column (repeatable); from --labels, else from the input's own attributes.")
@click.option("--labels-from-folders", is_flag=True,
              help="Label each image by its class subfolder (INPUT/CLASS/...), stored as the label 'class'.")
@click.option("--features", "feature_set", default=None, metavar="NAME",
              help="The feature set: multiscale (default: every encoder stage pooled, plus the latent), grid, or "
                   "latent (the latent `aekit compress` stores); `aekit plugins` lists them.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@runtime_option("the encoder")
@click.option("--strict", is_flag=True, help="Fail on the first unreadable image instead of skipping it.")
@click.option("--full-decode", is_flag=True,
              help="Decode every JPEG at full size before resizing (exact but slower; by default JPEGs at least "
                   "twice the model's size decode at a reduced scale, about 0.5 grey levels off on average).")
@align_option
@click.option("--overwrite", is_flag=True, help="Replace --out if it already exists (refused otherwise).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def embed(inputs, model_path, out, labels_csv, label_columns, labels_from_folders, feature_set, batch_size, device,
          runtime, strict, full_decode, align, overwrite, quiet):
    """Encode images to a features .npz (features, names, labels) for scikit-learn and `aekit similar`.

    INPUT is image files, folders (recursive), array files or any --data source. Labels come from
    the input's own attributes (synthetic's, a folder's attributes.csv) unless --labels or
    --labels-from-folders is given. Read it with aekit.load_features("feats.npz").

    With --align (auto by default) each face found in a photo is one row, named PHOTO#N (face N,
    largest first), with the photo's labels; the file's photo, face and box columns say where each
    row came from (face -1: the whole image, used as it is).

    \b
    Examples:
      aekit embed faces/ --model runs/synth --out feats.npz
      aekit embed faces/ --features latent --out latents.npz      # the 128-d latents only
      aekit embed synthetic:2000 --out feats.npz --label-column Male --label-column Smiling
      aekit embed photos/ --labels attrs.csv --label-column Eyeglasses --out feats.npz
      aekit embed pets/ --labels-from-folders --out pets.npz     # pets/cat/..., pets/dog/...
      aekit embed photos/ --align on --out faces.npz             # every face of every photo
    """
    from aekit import feature_sets
    from aekit.alignment import Placement, placement_columns
    from aekit.data import split_slice
    from aekit.inputs import open_inputs
    from aekit.features import save_features
    from aekit.devices import distributed_context

    from .lookup import FileResolver

    out = check_output_path(out)
    feature_set = feature_set or feature_sets.DEFAULT
    try:
        feature_sets.get(feature_set)
    except AekitError as exc:
        raise click.BadParameter(str(exc), param_hint="--features") from None
    if labels_csv and not Path(labels_csv).is_file():
        raise AekitError(f"--labels {labels_csv}: no such file")
    target = out.resolve()
    if any(p.exists() and p.resolve() == target for p in (Path(split_slice(i)[0]) for i in inputs)):
        raise AekitError(f"{out}: would overwrite an input; choose another --out")  # which --overwrite never allows
    refuse_existing_output(out, overwrite)  # before listing the inputs or loading the model
    source = open_inputs(inputs)
    keys = source.keys()
    if any(Path(k).exists() and Path(k).resolve() == target for k in keys[:100_000]):
        raise AekitError(f"{out}: would overwrite an input; choose another --out")
    columns, classes, origin, notes = labels_for_keys(source, keys, labels_csv, label_columns, labels_from_folders)
    rank, world = distributed_context()  # under torchrun: this process embeds one contiguous share
    model = load_model_arg(model_path, device=cli_device(device), task="features")
    if world > 1 and runtime == "auto":  # several processes: PyTorch, whose threads torchrun already shares out
        runtime = "torch"
    runtime = resolve_runtime(runtime, next(model.parameters()).device)
    resolver = FileResolver(source)
    all_files = [resolver.file(i) for i in range(len(keys))]  # once: for reduced decoding and the .npz
    if align == "off":  # each image as it is, as before --align
        reading = source if full_decode else reduced_files(source, all_files)
        latents, kept, skipped, error = encode_process_share(model, reading, rank, world, batch_size, strict, quiet,
                                                             reduced=not full_decode, kind=feature_set, runtime=runtime)
        rows = [(i, keys[i], Placement(keys[i], -1, (float("nan"),) * 4)) for i in kept]
    else:  # each face of each image (AlignedSource reads the images in full itself: no reduced decoding)
        latents, rows, skipped, error = encode_aligned_share(model, source, align, rank, world, batch_size, strict,
                                                             quiet, kind=feature_set, runtime=runtime)
    if rank != 0:  # rank 0 has every share and writes them
        return
    if error:
        raise AekitError(error)
    finish_skipped(skipped, len(rows))
    kept = [photo for photo, _, _ in rows]  # the image of each row
    files = [str(all_files[i] or "") for i in kept]
    labels = {name: column[kept] for name, column in columns.items()}
    meta = {"model": str(model_path) if model_path else str(getattr(model, "checkpoint_dir", "")),
            "inputs": [str(i) for i in inputs], "cwd": os.getcwd(), "source": source.description,
            "label_sources": origin, "skipped": len(skipped), "runtime": runtime, "align": align}
    meta["processes"] = world
    placements = placement_columns([placement for _, _, placement in rows])
    save_features(out, latents, [key for _, key, _ in rows], model, labels, files, meta, classes,
                  feature_set=feature_set, placements=placements)
    for note in notes:
        click.echo(f"note: {printable(note)}", err=True)
    described = ""
    if labels:
        names = list(labels)
        described = f"; labels: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}"
    faces = placements["face"] >= 0
    found = (f" ({int(faces.sum())} face(s) of {len(set(np.asarray(kept)[faces].tolist()))} image(s))"
             if faces.any() else "")
    click.echo(f"wrote {out}: {len(rows)} x {latents.shape[1]} {feature_set} features{found}{described}"
               + (f", {len(skipped)} skipped" if skipped else "")
               + (f" ({world} processes)" if world > 1 else ""))


# --- classify ------------------------------------------------------------------------------------------

ROWS_ALIGN_HELP = ("How the images behind the rows are read again: by default as each row says (face N of its photo, "
                   "found and aligned again as `aekit embed --align` found it, or the whole image); off: each row's "
                   "whole photo; on or auto: the photos' faces found so, matched to the rows by face index.")


# --align of the commands that read a features file's images again (classify, cluster): no default, "as each row says"
rows_align_option = align_option(default=None, help=ROWS_ALIGN_HELP)


def _placement_fields(feats, row: int) -> list:
    """photo, face and box (x, y, width, height; empty for a whole image) of a row, for a CSV."""
    box = feats.box[row]
    return [feats.photo[row], int(feats.face[row])] + ["" if not np.isfinite(v) else f"{float(v):.1f}" for v in box]


@click.command("classify")
@click.argument("features_file", metavar="FEATURES.npz", type=click.Path())
@click.option("--label", required=True, help="The label column to predict (see `aekit embed`).")
@click.option("--cv", type=click.IntRange(min=2), default=5, show_default=True, help="Folds of stratified cross-validation.")
@click.option("--test", "test_file", type=click.Path(), default=None, metavar="TEST.npz",
              help="Train on FEATURES.npz and score on this file instead of cross-validating.")
@click.option("--images", multiple=True, metavar="INPUT",
              help="Where FEATURES.npz's images are now (default: where `aekit embed` read them).")
@click.option("--test-images", multiple=True, metavar="INPUT", help="Where TEST.npz's images are now.")
@click.option("--pixel-size", type=click.IntRange(min=4, max=128), default=32, show_default=True,
              help="Pixel baselines read the images at SIZE x SIZE.")
@click.option("--no-pixels", is_flag=True, help="Skip the PCA and raw-pixel baselines.")
@click.option("--max-iter", type=click.IntRange(min=10), default=5000, show_default=True, help="LogisticRegression's iteration limit.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fold split.")
@click.option("--n-jobs", type=int, default=1, show_default=True, help="Folds fitted in parallel (-1: all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@rows_align_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def classify(features_file, label, cv, test_file, images, test_images, pixel_size, no_pixels, max_iter, seed, n_jobs,
             as_json, align, quiet):
    """Score a linear classifier on the features against PCA, raw pixels and the majority class.

    Standardised LogisticRegression, with stratified k-fold cross-validation (or --test to train on
    one file and score on another). Baselines: the same classifier on PCA of the pixels with as many
    dimensions as the features, on the raw (downsampled) pixels, and always predicting the most
    frequent class. Pixel baselines need the images (stored paths, the stored data source, or --images);
    rows that are faces of photos (`aekit embed --align`) get their face, aligned again (see --align).

    \b
    Examples:
      aekit classify feats.npz --label Male
      aekit classify train.npz --label Eyeglasses --test test.npz     # celeba-10k: train 1-9000, test 9001-10000
      aekit classify feats.npz --label class --cv 10 --no-pixels
    """
    from aekit.features import load_features

    from . import evaluate

    feats = load_features(features_file)
    known, y = evaluate.label_values(feats, label)
    X = feats.X[known]
    y = y[known]
    notes = []
    if (~known).any():
        notes.append(f"{int((~known).sum())} image(s) with an unknown {label} left out")
    test = None
    if test_file:
        test = load_features(test_file)
        if test.model_id != feats.model_id:
            raise AekitError(f"{test_file}: made by model {test.model_id}, {features_file} by {feats.model_id}; "
                             "embed both with the same model")
        known_t, y_t = evaluate.label_values(test, label)
        if label in feats.classes and label not in test.classes or label in test.classes and label not in feats.classes:
            raise AekitError(f"label {label!r} is a class name in one file and a number in the other")
        X_t, y_t = test.X[known_t], y_t[known_t]
        if not len(y_t):
            raise AekitError(f"{test_file}: no image has a known {label}")
        if (~known_t).any():
            notes.append(f"{int((~known_t).sum())} test image(s) with an unknown {label} left out")
    evaluate.check_label(y, label, None if test is not None else cv)
    values, counts = np.unique(y, return_counts=True)
    majority_class = values[counts.argmax()]

    def score(name, dims, estimator, A, A_test=None):
        if test is None:
            result, extra = evaluate.cross_validated(estimator, A, y, cv, seed, n_jobs)
        else:
            result, extra = evaluate.held_out(estimator, A, y, A_test, y_t)
        return evaluate.Score(name, dims, result["accuracy"][0], result["balanced_accuracy"][0],
                              result["accuracy"][1], result["balanced_accuracy"][1], extra)

    d = X.shape[1]
    scores = [score("autoencoder features", d, evaluate.linear_probe(max_iter, seed=seed), X, X_t if test is not None else None)]
    if not no_pixels:
        P, why = evaluate.baseline_pixels(feats, images, known, pixel_size, quiet, features_file, align)
        P_t = None
        if P is not None and test is not None:
            P_t, why = evaluate.baseline_pixels(test, test_images, known_t, pixel_size, quiet, test_file, align)
            if P_t is None:
                P = None
        if P is None:
            notes.append(why)
        else:
            train_rows = len(y) if test is not None else len(y) - -(-len(y) // cv)  # the smallest training fold
            components = min(d, P.shape[1], train_rows)
            pca = score(f"PCA of pixels ({pixel_size}x{pixel_size})", components,
                        evaluate.linear_probe(max_iter, pca=components, seed=seed), P, P_t)
            if components < d:
                pca.notes.append(f"{components} components, not {d}: limited by the training images or pixels")
            scores.append(pca)
            scores.append(score(f"raw pixels ({pixel_size}x{pixel_size})", P.shape[1], evaluate.linear_probe(max_iter, seed=seed), P, P_t))
    scores.append(score("majority class", None, evaluate.majority(), X, X_t if test is not None else None))
    if test is None:
        how = f"{cv}-fold stratified cross-validation (seed {seed})"
    else:
        how = f"trained on {len(y)} images of {features_file}, scored on {len(y_t)} of {test_file}"
    faces = feats.face[known] >= 0
    named = np.asarray(feats.photo, dtype=object)[known]
    photos = len(set(named.tolist()))  # the images the rows came from
    if as_json:
        click.echo(json.dumps({"label": label, "images": int(len(y)), "faces": int(faces.sum()), "photos": photos,
                               "classes": [str(v) for v in values],
                               "majority_class": str(majority_class), "majority_share": float(counts.max() / len(y)),
                               "evaluation": "cv" if test is None else "test", "cv": cv if test is None else None,
                               "test_images": int(len(y_t)) if test is not None else None,
                               "scores": [s.as_dict() for s in scores], "notes": notes}, indent=2))
        return
    found = (f"; {int(faces.sum())} of them faces found in {len(set(named[faces].tolist()))} photo(s)"
             if faces.any() else "")
    click.echo(f"label {label}: {len(y)} images, {len(values)} classes (majority {majority_class}: "
               f"{counts.max() / len(y):.1%}); {how}{found}")
    for line in evaluate.table(scores, test is not None):
        click.echo(line)
    for note in notes:
        click.echo(f"note: {note}")


# --- cluster -------------------------------------------------------------------------------------------


@click.command("cluster")
@click.argument("features_file", metavar="FEATURES.npz", type=click.Path())
@click.option("--k", "k", type=int, required=True, help="Number of clusters (at least 2).")
@click.option("--out", "-o", required=True, type=click.Path(),
              help="CSV to write: path,cluster (then photo,face,box_x,box_y,box_w,box_h when rows are faces of photos).")
@click.option("--sheet", type=click.Path(), default=None, help="Contact sheet PNG: one row of faces per cluster.")
@click.option("--method", default="kmeans", show_default=True,
              help="kmeans, minibatch-kmeans, agglomerative or gmm (plugins may add more).")
@click.option("--per-cluster", type=click.IntRange(min=1, max=64), default=8, show_default=True,
              help="Faces per row of the sheet: the members closest to the cluster's mean.")
@click.option("--images", multiple=True, metavar="INPUT", help="Where the images are now (default: where `aekit embed` read them).")
@click.option("--standardize/--no-standardize", default=True, show_default=True, help="Standardise each feature before clustering.")
@click.option("--seed", type=int, default=0, show_default=True)
@rows_align_option
def cluster(features_file, k, out, sheet, method, per_cluster, images, standardize, seed, align):
    """Cluster the features (k-means by default) into a CSV, with a contact sheet of each cluster's faces.

    When the rows are faces found in photos (`aekit embed --align`), the CSV also gives each row's
    photo, face index and box (x, y, width, height in the photo's pixels; empty for a whole image).

    \b
    Examples:
      aekit cluster feats.npz --k 8 --out clusters.csv --sheet clusters.png
      aekit cluster feats.npz --k 20 --method minibatch-kmeans --out clusters.csv
    """
    import csv
    import io as textio

    from aekit import io
    from aekit.features import load_features

    from . import cluster as clustering
    from .lookup import images_for, read_images

    if k < 2:
        raise click.BadParameter(f"must be at least 2 (got {k})", param_hint="--k")
    if method not in clustering.CLUSTER_METHODS:
        raise click.BadParameter(f"unknown method {method!r} (known: {', '.join(clustering.CLUSTER_METHODS)})", param_hint="--method")
    out = check_output_path(out)
    if sheet:
        sheet = check_output_path(sheet, "--sheet")
        if sheet.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
            raise click.BadParameter(f"{sheet}: use a .png, .jpg or .webp name", param_hint="--sheet")
    feats = load_features(features_file)
    labels, Z = clustering.cluster(feats.X, k, method, seed, standardize)
    text = textio.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    if (feats.face >= 0).any():  # faces of photos: where each came from
        writer.writerow(["path", "cluster", "photo", "face", "box_x", "box_y", "box_w", "box_h"])
        writer.writerows([path, c, *_placement_fields(feats, row)]
                         for row, (path, c) in enumerate(zip(feats.paths, labels.tolist())))
    else:
        writer.writerow(["path", "cluster"])
        writer.writerows(zip(feats.paths, labels.tolist()))
    io.write_text(out, text.getvalue())
    ids, sizes = np.unique(labels, return_counts=True)
    score = clustering.silhouette(Z, labels, seed)
    click.echo(f"wrote {out}: {len(labels)} images in {len(ids)} clusters ({method}"
               f"{' on standardised features' if standardize else ''}); sizes {', '.join(map(str, sizes.tolist()))}"
               + (f"; silhouette {score:.3f}" if score is not None else ""))
    if not sheet:
        return
    size = int(feats.meta.get("image_size") or 64)
    chosen = clustering.representatives(Z, labels, per_cluster)
    drawn = sorted(i for members in chosen.values() for i in members.tolist())
    source, why = images_for(feats, images, align, rows=drawn, size=size)  # only the faces drawn are found again
    if source is None:
        click.echo(f"note: no sheet written: {why}", err=True)
        return
    from aekit.images import image_grid

    pictures = {drawn[j]: image for j, image in read_images(source, range(len(drawn)), size).items()}
    rows, row_labels = [], []
    for c, members in chosen.items():
        row = [pictures[i] for i in members.tolist() if i in pictures]
        if row:
            rows.append(np.stack(row))
            row_labels.append(f"{c} (n={int((labels == c).sum())})")
    if not rows:
        click.echo("note: no sheet written: none of the images could be read", err=True)
        return
    grid = image_grid(rows, row_labels, title=f"{method}, k={k}: the {per_cluster} faces closest to each cluster's mean",
                      scale=2 if size <= 48 else 1)
    io.save_image(sheet, grid)
    click.echo(f"wrote {sheet}")


# --- similar -------------------------------------------------------------------------------------------


@click.command("similar")
@click.argument("queries", nargs=-1, required=True, metavar="QUERY_IMAGE...")
@click.option("--index", "index_file", required=True, type=click.Path(), metavar="FEATURES.npz",
              help="The faces to search: a features file from `aekit embed` (any feature set).")
@model_option(task="features")
@click.option("--k", type=click.IntRange(min=1, max=100), default=8, show_default=True, help="Neighbours per query.")
@click.option("--out", "-o", type=click.Path(), default=None, help="Contact sheet PNG: each query, then its neighbours.")
@click.option("--images", multiple=True, metavar="INPUT", help="Where the index's images are now (default: where `aekit embed` read them).")
@click.option("--engine", type=click.Choice(["auto", "numpy", "faiss"]), default="auto", show_default=True,
              help="Exact search in numpy (auto), or with faiss's exact index (pip install faiss-cpu): the same results.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@align_option
def similar(queries, index_file, model_path, k, out, images, engine, device, align):
    """Find the faces of an index most like each query (cosine similarity on standardised features).

    Prints one line per neighbour (query, rank, similarity, path) and, with --out, draws a contact
    sheet. The queries are encoded with the model and feature set that made the index; a model that
    did not make it is refused.

    With --align (auto by default) each face found in a query photo is a query, named QUERY#N (face
    N, largest first); a neighbour that is a face of a photo is named PHOTO#N as in the index, and the
    sheet shows that photo with the face's box (its aligned face in a corner).

    The four fields are separated by tabs. In the query and the path a backslash is written \\\\,
    a tab \\t, a newline \\n and other control characters \\xHH or \\uHHHH (an ESC is \\x1b),
    so each neighbour is one line of four fields, and a file name reads back exactly.

    \b
    Examples:
      aekit embed faces/ --out faces.npz                    # the index (once)
      aekit similar me.jpg --index faces.npz --k 8 --out neighbours.png
      aekit similar a.jpg b.jpg --index faces.npz --k 3
      aekit similar group.jpg --index faces.npz --align on  # each face of the photo
    """
    from aekit import io
    from aekit.errors import ImageReadError
    from aekit.features import load_features
    from aekit.images import open_image, resize_rgb

    from .lookup import images_for, read_images
    from .search import TILE, FaceIndex, contact_sheet, framed_tile

    if out:
        out = check_output_path(out)
        if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
            raise click.BadParameter(f"{out}: use a .png, .jpg or .webp name", param_hint="--out")
    feats = load_features(index_file)
    index = FaceIndex(feats.X, engine)
    model = None
    if align == "off":  # each query as it is, as before --align
        pictures, names, skipped, query_photos = [], [], [], []
        for query in queries:
            try:
                pictures.append(np.asarray(open_image(Path(query))))
                names.append(str(query))
                query_photos.append(None)
            except ImageReadError as exc:
                skipped.append(str(exc))
    else:
        model = _index_model(model_path, device, feats, index_file)  # the model's size frames the faces
        pictures, names, skipped, query_photos = _aligned_queries(queries, align, model.config.image_size, bool(out))
    finish_skipped(skipped, len(pictures))
    if model is None:
        model = _index_model(model_path, device, feats, index_file)
    encoder = FastEncoder(model, kind=feats.feature_set)
    size = model.config.image_size
    batch = np.stack([resize_rgb(p, size) for p in pictures])
    rows, scores = index.search(encoder(batch), k)
    for name, found, similarity in zip(names, rows, scores):
        for rank, (row, score) in enumerate(zip(found.tolist(), similarity.tolist()), 1):
            click.echo(tsv_line([name, rank, f"{score:.4f}", feats.paths[row]]))  # a name cannot forge a line
    if not out:
        return
    needed = sorted({int(r) for r in rows.ravel()})
    source, why = images_for(feats, images, rows=needed, size=size)  # only the neighbours' faces are found again
    found_images = {}
    if source is None:
        click.echo(f"note: neighbours drawn as blanks: {why}", err=True)
    else:
        found_images = {needed[j]: image for j, image in read_images(source, range(len(needed)), size).items()}
        for j, row in enumerate(needed):  # a face of a photo: the photo, with the face's box
            if row in found_images and feats.face[row] >= 0 and hasattr(source, "photo"):
                try:
                    found_images[row] = framed_tile(source.photo(j), feats.box[row], found_images[row])
                except ImageReadError:
                    pass
    neighbours = [[found_images.get(int(r)) for r in found] for found in rows]
    shown = [resize_rgb(p, size) if photo is None else framed_tile(photo[0], photo[1], resize_rgb(p, size))
             for p, photo in zip(pictures, query_photos)]
    sheet = contact_sheet(shown, names, neighbours, scores,
                          f"{feats.feature_set} features of {len(index):,} faces: the {rows.shape[1]} most similar to each query",
                          tile=TILE)
    io.save_image(out, sheet)
    click.echo(f"wrote {out}", err=True)


def _index_model(model_path, device, feats, index_file):
    """The model that made the index (refused otherwise)."""
    from aekit import model_fingerprint

    model = load_model_arg(model_path, device=cli_device(device), task="features")
    if model_fingerprint(model) != feats.model_id:
        where = getattr(model, "checkpoint_dir", None) or "this model"
        raise AekitError(f"{index_file}: made by model {feats.model_id} ({feats.meta.get('model') or 'unknown'}), not by "
                         f"{where}; give the --model that made the index, or embed the faces again")
    return model


def _aligned_queries(queries, align: str, size: int, keep_photos: bool):
    """`aekit similar`'s queries under --align auto|on: (model inputs, names, skip messages, and for each input
    (its photo, the face's box) when it is a face of the photo and `keep_photos`, else None)."""
    from aekit.alignment import aligned_source
    from aekit.errors import ImageReadError
    from aekit.inputs import FileListSource

    source = FileListSource([Path(q) for q in queries])
    aligned = aligned_source(source, align, size, progress=len(queries) > 16)
    pictures, names, skipped, photos = [], [], [], []
    kept_photos: dict[int, np.ndarray] = {}
    for i, placement in enumerate(aligned.placements()):
        try:
            picture = aligned.read(i)
        except ImageReadError as exc:
            skipped.append(str(exc))
            continue
        q = aligned.source_index(i)
        pictures.append(np.asarray(picture))
        names.append(f"{queries[q]}#{placement.face_index}" if placement.aligned else str(queries[q]))
        photo = None
        if placement.aligned and keep_photos:
            if q not in kept_photos:
                from aekit.images import to_rgb

                kept_photos[q] = np.asarray(to_rgb(source.read(q)), dtype=np.uint8)
            photo = (kept_photos[q], placement.box)
        photos.append(photo)
    return pictures, names, skipped, photos
