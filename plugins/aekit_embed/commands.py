"""The ``aekit embed``, ``aekit classify`` and ``aekit cluster`` commands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import numpy as np

from aekit.cli import check_output_path, echo_skipped, model_option
from aekit.errors import AekitError


def _device(name: str):
    from aekit.errors import TrainingError
    from aekit.train import resolve_device

    try:
        return resolve_device(name)
    except TrainingError as exc:
        raise click.UsageError(str(exc)) from None


# --- the fast inference path ----------------------------------------------------------------------------


def fold_batchnorm(module) -> int:
    """Fold every BatchNorm2d that directly follows a Conv2d in an nn.Sequential into that conv, in place.

    Only for inference (eval mode; the running statistics become part of the conv's weights), so call
    it on a copy. The output is the same up to float rounding. Returns how many were folded.
    """
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats
                    and bn.running_mean is not None and bn.num_features == conv.out_channels
                    and not conv.training and not bn.training):
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = nn.Identity()
                folded += 1
    return folded


class FastEncoder:
    """uint8 (N, S, S, 3) images -> float32 latents, as ``model.encode`` gives them, faster.

    Runs an inference copy of the model: eval mode, BatchNorm folded into the convolutions,
    channels_last memory (the uint8 NHWC batch already is channels_last once permuted, so no copy),
    under ``torch.inference_mode``, in float32. The first batch is checked against the plain encoder
    (within 1e-4 of the latents' scale); a model whose copy disagrees, or that has no ``encoder``,
    silently uses ``model.encode`` instead.
    """

    def __init__(self, model, channels_last: bool = True):
        import copy

        import torch

        self.model = model
        self.device = next(model.parameters()).device
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.fast = None
        if callable(getattr(model, "encoder", None)):
            was_training = model.training
            model.eval()
            try:
                fast = copy.deepcopy(model)
            finally:
                model.train(was_training)
            fold_batchnorm(fast)
            self.fast = fast.to(memory_format=self.memory_format)
        self.checked = False

    def _input(self, images):
        import torch

        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2)
        return x.float().div_(127.5).sub_(1).contiguous(memory_format=self.memory_format)  # model.encode's maths

    def __call__(self, images: np.ndarray) -> np.ndarray:
        import torch

        if self.fast is None:
            return self.model.encode(images).numpy()
        with torch.inference_mode():
            z = self.fast.encoder(self._input(images)).float().cpu()
            if not self.checked:
                self.checked = True
                plain = self.model.encode(images[:8]).float()
                scale = max(float(plain.abs().max()), 1.0)
                if not torch.allclose(z[: len(plain)], plain, rtol=0, atol=1e-4 * scale):
                    self.fast = None  # a structure folding does not suit: the plain path from now on
                    return self.model.encode(images).numpy()
        return z.numpy()


def reduced_files(source, files=None):
    """`source` with its image files (folders, named files) decoded at a reduced JPEG scale, for speed.

    Returns a view whose ``read_reduced`` opens the image's file with Pillow's draft (see
    ``aekit.data.ImageSource.read_reduced``), or `source` itself when its ``iter_images`` is its own
    (e.g. synthetic faces drawn at the target size) and would not use it. `files` (one path or None
    per image, as ``FileResolver.file`` gives) saves resolving them again.
    """
    from aekit.data import ImageSource, supports_reduced
    from aekit.images import open_image

    from .lookup import FileResolver

    if not supports_reduced(source):
        return source
    if files is None:
        resolver = FileResolver(source)
        files = [resolver.file(i) for i in range(len(source))]

    class ReducedFiles(ImageSource):
        description = source.description

        def keys(self):
            return source.keys()

        def fingerprint(self):
            return source.fingerprint()

        def attributes(self):
            return source.attributes()

        def read(self, index):
            return source.read(index)

        def read_reduced(self, index, size):
            path = files[index]
            return open_image(path, draft_size=size) if path is not None else source.read_reduced(index, size)

        def byte_size(self, index):
            return source.byte_size(index)

    return ReducedFiles()


def prefetch(iterator, depth: int = 2):
    """Run `iterator` in a background thread, `depth` items ahead (decoding overlaps the model's work)."""
    import queue
    import threading

    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put((done, None))
        except BaseException as exc:  # handed to the consumer, raised there
            items.put((done, exc))

    thread = threading.Thread(target=produce, daemon=True, name="aekit-prefetch")
    thread.start()
    try:
        while True:
            item, error = items.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting to put, then let it finish
            try:
                items.get(timeout=0.1)
            except queue.Empty:
                pass
        if hasattr(iterator, "close"):
            iterator.close()


# --- embed ---------------------------------------------------------------------------------------------


def labels_for_keys(source, keys, labels_csv, label_columns, from_folders):
    """Label columns for every key of the source (before any image is read, so bad options fail fast).

    Returns (columns, class names, where each came from, notes).
    """
    from .labels import FOLDER_LABEL, folder_classes, read_label_csv, source_labels
    from .lookup import FileResolver

    columns, classes, origin, notes = {}, {}, {}, []
    if from_folders:
        resolver = FileResolver(source)
        named = [resolver.is_named_file(i) for i in range(len(keys))]
        files = [resolver.file(i) if named[i] else None for i in range(len(keys))]
        columns[FOLDER_LABEL], classes[FOLDER_LABEL] = folder_classes(keys, named, files)
        origin[FOLDER_LABEL] = "folders"
        unknown = int((columns[FOLDER_LABEL] < 0).sum())
        if unknown:
            notes.append(f"{unknown} image(s) are not in a class subfolder (label {FOLDER_LABEL} = -1)")
    if labels_csv:
        found, found_classes, unmatched = read_label_csv(labels_csv, keys, list(label_columns) or None)
        clash = sorted(set(found) & set(columns))
        if clash:
            raise AekitError(f"{labels_csv}: column {clash[0]!r} clashes with the class-subfolder label; rename it")
        columns.update(found)
        classes.update(found_classes)
        origin.update({name: f"csv:{Path(labels_csv).name}" for name in found})
        if unmatched:
            notes.append(f"{unmatched} image(s) have no row in {labels_csv} (their labels are -1)")
    elif label_columns or not from_folders:
        attributes = source.attributes()
        if label_columns:
            missing = [c for c in label_columns if c not in attributes]
            if missing:
                known = ", ".join(attributes) if attributes else "none"
                raise AekitError(f"--label-column {missing[0]!r}: the input has no such attribute (attributes: {known}); "
                                 "give a CSV with --labels FILE.csv")
            attributes = {c: attributes[c] for c in label_columns}
        found, dropped = source_labels(attributes, list(range(len(keys))))
        if dropped:
            notes.append(f"attribute(s) {', '.join(dropped)} are not integer classes; left out")
        if from_folders and FOLDER_LABEL in found:
            raise AekitError(f"the input has its own attribute {FOLDER_LABEL!r}, which clashes with --labels-from-folders")
        columns.update(found)
        origin.update({name: "source" for name in found})
    return columns, classes, origin, notes


def shard_indices(count: int, rank: int, world: int) -> list[int]:
    """The contiguous share of `count` inputs that process `rank` of `world` embeds (sizes differ by at most 1)."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in [0, {world})")
    return list(range(rank * count // world, (rank + 1) * count // world))


def encode_share(model, source, indices, batch_size: int, strict: bool, progress: bool, reduced: bool = True):
    """Encode `source`'s images at `indices` with the fast path.

    Returns (latents (M, D) float32, the indices that were read, skip messages, an error or None);
    with `strict` the first unreadable image is an error. `reduced` allows JPEG draft decoding.
    """
    from aekit.data import SubsetSource, iter_batches

    view = source if len(indices) == len(source) else SubsetSource(source, indices)
    skipped, kept, chunks = [], [], []
    encoder = FastEncoder(model)
    batches = iter_batches(view, model.config.image_size, batch_size, skipped, progress, "embedding",
                           reduced=reduced)
    for batch in prefetch(batches):
        if strict and skipped:
            break
        chunks.append(encoder(batch.images))
        kept += [indices[i] for i in batch.indices]
    error = skipped[0] if strict and skipped else None
    latents = np.concatenate(chunks) if chunks else np.zeros((0, model.config.latent_dim), np.float32)
    return latents.astype(np.float32, copy=False), kept, skipped, error


def gather_shares(latents, kept, skipped, error, rank: int, world: int):
    """Rank 0 receives every rank's share and returns them merged in input order (shares are contiguous,
    so rank order is input order); other ranks return their own."""
    import torch.distributed as dist

    shares = [None] * world if rank == 0 else None
    dist.gather_object((latents, kept, skipped, error), shares, dst=0)
    if rank != 0:
        return latents, kept, skipped, error
    errors = [share[3] for share in shares if share[3]]
    return (np.concatenate([share[0] for share in shares]), [i for share in shares for i in share[1]],
            [message for share in shares for message in share[2]], errors[0] if errors else None)


def embed_command():
    @click.command()
    @click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
    @model_option
    @click.option("--out", "-o", required=True, type=click.Path(), help="The features .npz to write.")
    @click.option("--labels", "labels_csv", type=click.Path(), default=None, metavar="FILE.csv",
                  help="Labels from a CSV keyed by file name (first column), like CelebA's attributes.csv.")
    @click.option("--label-column", "label_columns", multiple=True, metavar="COL",
                  help="Keep only this label column (repeatable); from --labels, else from the input's own attributes.")
    @click.option("--labels-from-folders", is_flag=True,
                  help="Label each image by its class subfolder (INPUT/CLASS/...), stored as the label 'class'.")
    @click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
    @click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
    @click.option("--strict", is_flag=True, help="Fail on the first unreadable image instead of skipping it.")
    @click.option("--full-decode", is_flag=True,
                  help="Decode every JPEG at full size before resizing (exact but slower; by default JPEGs at least "
                       "twice the model's size decode at a reduced scale, about 0.5 grey levels off on average).")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
    def embed(inputs, model_path, out, labels_csv, label_columns, labels_from_folders, batch_size, device, strict,
              full_decode, quiet):
        """Encode images to a features .npz (latents, names, labels) for scikit-learn.

        INPUT is image files, folders (recursive), array files or any --data source. Labels come from
        the input's own attributes (synthetic's, a folder's attributes.csv) unless --labels or
        --labels-from-folders is given. Read it with aekit.load_features("feats.npz").

        \b
        Examples:
          aekit embed faces/ --model runs/synth --out feats.npz
          aekit embed synthetic:2000 --out feats.npz --label-column Male --label-column Smiling
          aekit embed photos/ --labels attrs.csv --label-column Eyeglasses --out feats.npz
          aekit embed pets/ --labels-from-folders --out pets.npz     # pets/cat/..., pets/dog/...
        """
        from aekit.cli import load_model_arg
        from aekit.data import open_inputs
        from aekit.features import save_features

        from .lookup import FileResolver

        out = check_output_path(out)
        if labels_csv and not Path(labels_csv).is_file():
            raise AekitError(f"--labels {labels_csv}: no such file")
        source = open_inputs(inputs)
        keys = source.keys()
        target = out.resolve()
        if any(Path(k).exists() and Path(k).resolve() == target for k in keys[:100_000]):
            raise AekitError(f"{out}: would overwrite an input; choose another --out")
        columns, classes, origin, notes = labels_for_keys(source, keys, labels_csv, label_columns, labels_from_folders)
        from aekit.train import distributed_context

        rank, world = distributed_context()  # under torchrun: this process embeds one contiguous share
        model = load_model_arg(model_path, device=_device(device))
        resolver = FileResolver(source)
        all_files = [resolver.file(i) for i in range(len(keys))]  # once: for reduced decoding and the .npz
        reading = source if full_decode else reduced_files(source, all_files)
        share = shard_indices(len(keys), rank, world)
        latents, kept, skipped, error = encode_share(model, reading, share, batch_size, strict,
                                                     progress=not quiet and rank == 0, reduced=not full_decode)
        if world > 1:  # every rank reports, errors included, so none waits forever on a failed one
            latents, kept, skipped, error = gather_shares(latents, kept, skipped, error, rank, world)
            if rank != 0:
                return
        if error:
            raise AekitError(error)
        echo_skipped(skipped)
        if not len(kept):
            raise AekitError("no image could be read; nothing written")
        files = [str(all_files[i] or "") for i in kept]
        labels = {name: column[kept] for name, column in columns.items()}
        meta = {"model": str(model_path) if model_path else str(getattr(model, "checkpoint_dir", "")),
                "inputs": [str(i) for i in inputs], "cwd": os.getcwd(), "source": source.description,
                "label_sources": origin, "skipped": len(skipped)}
        meta["processes"] = world
        save_features(out, latents, [keys[i] for i in kept], model, labels, files, meta, classes)
        for note in notes:
            click.echo(f"note: {note}", err=True)
        described = ""
        if labels:
            names = list(labels)
            described = f"; labels: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}"
        click.echo(f"wrote {out}: {len(kept)} x {latents.shape[1]} features{described}"
                   + (f", {len(skipped)} skipped" if skipped else "")
                   + (f" ({world} processes)" if world > 1 else ""))

    return embed


# --- classify ------------------------------------------------------------------------------------------


def _label_values(feats, label):
    """(known-row mask, y) with class names where the label has them."""
    codes = feats.target(label)
    values = feats.target(label, as_names=True) if label in feats.classes else codes
    return codes >= 0, values


def _load_pixels(feats, images, keep, size, quiet, what):
    from .evaluate import pixels
    from .lookup import images_for

    source, why = images_for(feats, images)
    if source is None:
        return None, f"pixel baselines skipped for {what}: {why}"
    try:
        return pixels(source, size, len(feats), not quiet)[keep], None
    except AekitError as exc:
        if images:
            raise
        return None, f"pixel baselines skipped for {what}: {exc}"


def classify_command():
    @click.command()
    @click.argument("features_file", metavar="FEATURES.npz", type=click.Path(dir_okay=False))
    @click.option("--label", required=True, help="The label column to predict (see `aekit embed`).")
    @click.option("--cv", type=click.IntRange(min=2), default=5, show_default=True, help="Folds of stratified cross-validation.")
    @click.option("--test", "test_file", type=click.Path(dir_okay=False), default=None, metavar="TEST.npz",
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
        known, y = _label_values(feats, label)
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
            known_t, y_t = _label_values(test, label)
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
            P, why = _load_pixels(feats, images, known, pixel_size, quiet, features_file)
            P_t = None
            if P is not None and test is not None:
                P_t, why = _load_pixels(test, test_images, known_t, pixel_size, quiet, test_file)
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

    return classify


# --- cluster -------------------------------------------------------------------------------------------


def cluster_command():
    @click.command()
    @click.argument("features_file", metavar="FEATURES.npz", type=click.Path(dir_okay=False))
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

    return cluster
