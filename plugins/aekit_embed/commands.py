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

from aekit.cli import check_output_path, finish_skipped, model_option, refuse_existing_output
from aekit.errors import AekitError
from aekit.text import printable, tsv_line
from aekit_export.options import runtime_option

from .fast_encoder import FastEncoder, encode_share, fold_batchnorm
from .labels import labels_for_keys
from .prefetch import prefetch, reduced_files
from .sharding import encode_process_share, gather_shares, shard_indices

__all__ = ["FastEncoder", "classify", "cluster", "embed", "similar", "encode_process_share", "encode_share", "fold_batchnorm",
           "gather_shares", "labels_for_keys", "prefetch", "reduced_files", "shard_indices"]


# --- embed ---------------------------------------------------------------------------------------------


@click.command("embed")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@model_option
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
@click.option("--overwrite", is_flag=True, help="Replace --out if it already exists (refused otherwise).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def embed(inputs, model_path, out, labels_csv, label_columns, labels_from_folders, feature_set, batch_size, device,
          runtime, strict, full_decode, overwrite, quiet):
    """Encode images to a features .npz (features, names, labels) for scikit-learn and `aekit similar`.

    INPUT is image files, folders (recursive), array files or any --data source. Labels come from
    the input's own attributes (synthetic's, a folder's attributes.csv) unless --labels or
    --labels-from-folders is given. Read it with aekit.load_features("feats.npz").

    \b
    Examples:
      aekit embed faces/ --model runs/synth --out feats.npz
      aekit embed faces/ --features latent --out latents.npz      # the 128-d latents only
      aekit embed synthetic:2000 --out feats.npz --label-column Male --label-column Smiling
      aekit embed photos/ --labels attrs.csv --label-column Eyeglasses --out feats.npz
      aekit embed pets/ --labels-from-folders --out pets.npz     # pets/cat/..., pets/dog/...
    """
    from aekit import feature_sets
    from aekit.cli import cli_device, load_model_arg
    from aekit.data import split_slice
    from aekit.inputs import open_inputs
    from aekit.features import save_features
    from aekit.train import distributed_context

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
    model = load_model_arg(model_path, device=cli_device(device))
    from aekit_export.runtime import resolve_runtime

    if world > 1 and runtime == "auto":  # several processes: PyTorch, whose threads torchrun already shares out
        runtime = "torch"
    runtime = resolve_runtime(runtime, next(model.parameters()).device)
    resolver = FileResolver(source)
    all_files = [resolver.file(i) for i in range(len(keys))]  # once: for reduced decoding and the .npz
    reading = source if full_decode else reduced_files(source, all_files)
    latents, kept, skipped, error = encode_process_share(model, reading, rank, world, batch_size, strict, quiet,
                                                         reduced=not full_decode, kind=feature_set, runtime=runtime)
    if rank != 0:  # rank 0 has every share and writes them
        return
    if error:
        raise AekitError(error)
    finish_skipped(skipped, len(kept))
    files = [str(all_files[i] or "") for i in kept]
    labels = {name: column[kept] for name, column in columns.items()}
    meta = {"model": str(model_path) if model_path else str(getattr(model, "checkpoint_dir", "")),
            "inputs": [str(i) for i in inputs], "cwd": os.getcwd(), "source": source.description,
            "label_sources": origin, "skipped": len(skipped), "runtime": runtime}
    meta["processes"] = world
    save_features(out, latents, [keys[i] for i in kept], model, labels, files, meta, classes, feature_set=feature_set)
    for note in notes:
        click.echo(f"note: {printable(note)}", err=True)
    described = ""
    if labels:
        names = list(labels)
        described = f"; labels: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}"
    click.echo(f"wrote {out}: {len(kept)} x {latents.shape[1]} {feature_set} features{described}"
               + (f", {len(skipped)} skipped" if skipped else "")
               + (f" ({world} processes)" if world > 1 else ""))


# --- classify ------------------------------------------------------------------------------------------


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
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def classify(features_file, label, cv, test_file, images, test_images, pixel_size, no_pixels, max_iter, seed, n_jobs,
             as_json, quiet):
    """Score a linear classifier on the features against PCA, raw pixels and the majority class.

    Standardised LogisticRegression, with stratified k-fold cross-validation (or --test to train on
    one file and score on another). Baselines: the same classifier on PCA of the pixels with as many
    dimensions as the features, on the raw (downsampled) pixels, and always predicting the most
    frequent class. Pixel baselines need the images (stored paths, the stored data source, or --images).

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
        P, why = evaluate.baseline_pixels(feats, images, known, pixel_size, quiet, features_file)
        P_t = None
        if P is not None and test is not None:
            P_t, why = evaluate.baseline_pixels(test, test_images, known_t, pixel_size, quiet, test_file)
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
    if as_json:
        click.echo(json.dumps({"label": label, "images": int(len(y)), "classes": [str(v) for v in values],
                               "majority_class": str(majority_class), "majority_share": float(counts.max() / len(y)),
                               "evaluation": "cv" if test is None else "test", "cv": cv if test is None else None,
                               "test_images": int(len(y_t)) if test is not None else None,
                               "scores": [s.as_dict() for s in scores], "notes": notes}, indent=2))
        return
    click.echo(f"label {label}: {len(y)} images, {len(values)} classes (majority {majority_class}: "
               f"{counts.max() / len(y):.1%}); {how}")
    for line in evaluate.table(scores, test is not None):
        click.echo(line)
    for note in notes:
        click.echo(f"note: {note}")


# --- cluster -------------------------------------------------------------------------------------------


@click.command("cluster")
@click.argument("features_file", metavar="FEATURES.npz", type=click.Path())
@click.option("--k", "k", type=int, required=True, help="Number of clusters (at least 2).")
@click.option("--out", "-o", required=True, type=click.Path(), help="CSV to write: path,cluster.")
@click.option("--sheet", type=click.Path(), default=None, help="Contact sheet PNG: one row of faces per cluster.")
@click.option("--method", default="kmeans", show_default=True,
              help="kmeans, minibatch-kmeans, agglomerative or gmm (plugins may add more).")
@click.option("--per-cluster", type=click.IntRange(min=1, max=64), default=8, show_default=True,
              help="Faces per row of the sheet: the members closest to the cluster's mean.")
@click.option("--images", multiple=True, metavar="INPUT", help="Where the images are now (default: where `aekit embed` read them).")
@click.option("--standardize/--no-standardize", default=True, show_default=True, help="Standardise each feature before clustering.")
@click.option("--seed", type=int, default=0, show_default=True)
def cluster(features_file, k, out, sheet, method, per_cluster, images, standardize, seed):
    """Cluster the features (k-means by default) into a CSV, with a contact sheet of each cluster's faces.

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
    source, why = images_for(feats, images)
    if source is None:
        click.echo(f"note: no sheet written: {why}", err=True)
        return
    from aekit.images import image_grid

    size = int(feats.meta.get("image_size") or 64)
    chosen = clustering.representatives(Z, labels, per_cluster)
    pictures = read_images(source, sorted(i for members in chosen.values() for i in members.tolist()), size)
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
@model_option
@click.option("--k", type=click.IntRange(min=1, max=100), default=8, show_default=True, help="Neighbours per query.")
@click.option("--out", "-o", type=click.Path(), default=None, help="Contact sheet PNG: each query, then its neighbours.")
@click.option("--images", multiple=True, metavar="INPUT", help="Where the index's images are now (default: where `aekit embed` read them).")
@click.option("--engine", type=click.Choice(["auto", "numpy", "faiss"]), default="auto", show_default=True,
              help="Exact search in numpy (auto), or with faiss's exact index (pip install faiss-cpu): the same results.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
def similar(queries, index_file, model_path, k, out, images, engine, device):
    """Find the faces of an index most like each query (cosine similarity on standardised features).

    Prints one line per neighbour (query, rank, similarity, path) and, with --out, draws a contact
    sheet. The queries are encoded with the model and feature set that made the index; a model that
    did not make it is refused.

    The four fields are separated by tabs. In the query and the path a backslash is written \\\\,
    a tab \\t, a newline \\n and other control characters \\xHH or \\uHHHH (an ESC is \\x1b),
    so each neighbour is one line of four fields, and a file name reads back exactly.

    \b
    Examples:
      aekit embed faces/ --out faces.npz                    # the index (once)
      aekit similar me.jpg --index faces.npz --k 8 --out neighbours.png
      aekit similar a.jpg b.jpg --index faces.npz --k 3
    """
    from aekit import io, model_fingerprint
    from aekit.cli import cli_device, load_model_arg
    from aekit.errors import ImageReadError
    from aekit.features import load_features
    from aekit.images import open_image, resize_rgb

    from .lookup import images_for, read_images
    from .search import FaceIndex, contact_sheet

    if out:
        out = check_output_path(out)
        if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
            raise click.BadParameter(f"{out}: use a .png, .jpg or .webp name", param_hint="--out")
    feats = load_features(index_file)
    index = FaceIndex(feats.X, engine)
    pictures, names, skipped = [], [], []
    for query in queries:
        try:
            pictures.append(np.asarray(open_image(Path(query))))
            names.append(str(query))
        except ImageReadError as exc:
            skipped.append(str(exc))
    finish_skipped(skipped, len(pictures))
    model = load_model_arg(model_path, device=cli_device(device))
    if model_fingerprint(model) != feats.model_id:
        where = getattr(model, "checkpoint_dir", None) or "this model"
        raise AekitError(f"{index_file}: made by model {feats.model_id} ({feats.meta.get('model') or 'unknown'}), not by "
                         f"{where}; give the --model that made the index, or embed the faces again")
    encoder = FastEncoder(model, kind=feats.feature_set)
    size = model.config.image_size
    batch = np.stack([resize_rgb(p, size) for p in pictures])
    rows, scores = index.search(encoder(batch), k)
    for name, found, similarity in zip(names, rows, scores):
        for rank, (row, score) in enumerate(zip(found.tolist(), similarity.tolist()), 1):
            click.echo(tsv_line([name, rank, f"{score:.4f}", feats.paths[row]]))  # a name cannot forge a line
    if not out:
        return
    source, why = images_for(feats, images)
    found_images = {}
    if source is None:
        click.echo(f"note: neighbours drawn as blanks: {why}", err=True)
    else:
        found_images = read_images(source, sorted({int(r) for r in rows.ravel()}), size)
    neighbours = [[found_images.get(int(r)) for r in found] for found in rows]
    sheet = contact_sheet([resize_rgb(p, size) for p in pictures], names, neighbours, scores,
                          f"{feats.feature_set} features of {len(index):,} faces: the {rows.shape[1]} most similar to each query")
    io.save_image(out, sheet)
    click.echo(f"wrote {out}", err=True)
