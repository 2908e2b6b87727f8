"""Misframed faces and faces-64: does ``--align on`` give the model back what it gets from CelebA's own framing?

    python benchmarks/face_misframed.py                          # all 1,000 test faces (about 3-6 minutes on 2 shared cores)
    python benchmarks/face_misframed.py --count 200              # test faces 9001-9200 only
    python benchmarks/face_misframed.py --features multiscale    # probe on the default feature set (about 10 minutes)

Each of celeba-10k's test faces 9001-10000 is misframed: its aligned image (178x218 frame) is scaled to 0.25-1x
of CelebA's size, turned by up to +-25 degrees, shifted anywhere and pasted, feathered, into its own 640x480
photo-like canvas (a scikit-image sample picture without people as background; the pasting code is
``face_align.make_canvas``, one face per canvas). faces-64 then sees, for every face:

- (a) the CelebA-aligned face as it is: the 89x109 test image resized straight to 64x64 (``resize_rgb``; what
  the model was trained on, and the reference every PSNR below is measured against unless said otherwise);
- (b) the canvas with ``--align on``: the largest face the aligner finds, cropped (``aekit.alignment.model_inputs``);
  a canvas where none is found gives no input and is counted;
- (c) the canvas with ``--align off``: the whole canvas resized straight to 64x64;
- (a) with ``--align auto``: left as it is when the aligner calls it framed like CelebA, else re-aligned;
- reference: (a) with ``--align on`` (every aligned face re-aligned by the aligner).

Printed: reconstruction PSNR (64x64, [0, 1] scale, mean over faces) against (a)'s input and against the
condition's own input, and the mean accuracy over CelebA's 40 attributes of a linear probe
(``aekit_embed.evaluate.linear_probe``: standardised LogisticRegression) fitted on the latents (or ``--features``)
of the training faces 1-9000 as they are, scored on each condition. Comparisons of (b) with (a) use the same
faces (those found in (b)), with paired 95% intervals of the difference. Nothing is tuned on the test faces.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_align import IMAGES, Reference, backgrounds, load_test, make_canvas

DATA = IMAGES.parent
CANVAS = (640, 480)
CELEBA_HEIGHT = 0.45 * CANVAS[1]  # make_canvas scales a frame to 0.25-1x of this: 216 px, CelebA's 218


def cpu_name() -> str:
    """The CPU as /proc/cpuinfo names it, with its family and model numbers (a VM often says only "AMD EPYC")."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    name = fields.get("model name", platform.machine())
    return f"{name} (family {fields['cpu family']}, model {fields['model']})" if "cpu family" in fields else name


def misframed(test: list[np.ndarray], seed: int = 1, size=CANVAS) -> list[tuple[np.ndarray, object]]:
    """One canvas per face: (canvas, face_align.Pasted) with the face's frame -> canvas transform."""
    rng = np.random.default_rng(seed)
    pictures = backgrounds()
    one = [Reference(np.eye(2, 3), None, None)]  # make_canvas only asks whether a face has a transform
    out = []
    for image in test:
        canvas, pasted = make_canvas(rng, size, (1, 1), [image], one, pictures)
        out.append((canvas, pasted[0]))
    return out


def is_pasted_face(face, pasted) -> bool:
    """Whether a face found lies where the pasted face is (as face_align.evaluate matches them)."""
    centre = pasted.to_canvas[:, :2] @ np.array([88.5, 120.0]) + pasted.to_canvas[:, 2]
    return float(np.linalg.norm(face.to_photo([(88.5, 120.0)])[0] - centre)) < 0.25 * pasted.height


def bucket(pasted) -> str:
    return "0.25-0.5x" if pasted.height < 0.5 * CELEBA_HEIGHT else "0.5-1x"


def encode_decode(model, inputs: np.ndarray, kind: str):
    """(reconstructions in [-1, 1] (N, 3, 64, 64), probe features (N, D)) of uint8 (N, 64, 64, 3) inputs."""
    import torch

    z = model.encode(inputs)
    recon = model.decode(z).clamp(-1, 1)
    features = z if kind == "latent" else model.features(inputs, kind)
    return recon, np.asarray(features.numpy() if torch.is_tensor(features) else features, dtype=np.float32)


def interval(diffs) -> str:
    diffs = np.asarray(diffs, dtype=np.float64)
    half = 1.96 * diffs.std(ddof=1) / np.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
    return f"{diffs.mean():+.3f} (+-{half:.3f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="faces-64")
    parser.add_argument("--count", type=int, default=1000, help="test faces 9001..9000+COUNT")
    parser.add_argument("--features", default="latent", help="the probe's features: latent (default) or a feature set")
    parser.add_argument("--seed", type=int, default=1, help="the canvases' random generator")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not (DATA / "attributes.csv").is_file():
        sys.exit(f"celeba-10k is not at {DATA}; this benchmark needs its images and attributes")
    import cv2
    import torch
    from aekit_embed.evaluate import linear_probe

    import aekit
    from aekit.alignment import AlignmentError, get_aligner, model_inputs
    from aekit.data import prepare
    from aekit.metrics import psnr

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    started = time.perf_counter()
    count = max(1, min(args.count, 1000))
    model = aekit.load(args.model).eval()
    aligner = get_aligner()

    # the probe: fitted on the training faces as they are
    train = prepare(f"{DATA}[:9000]", 64, progress=False)
    test_prepared = prepare(f"{DATA}[9000:{9000 + count}]", 64, progress=False)
    x_train = np.ascontiguousarray(train.images.transpose(0, 2, 3, 1))
    f_train = (model.encode(x_train) if args.features == "latent" else model.features(x_train, args.features)).numpy()
    names = sorted(n for n, y in train.attributes.items() if set(np.unique(y[y >= 0])) == {0, 1})
    probes = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            known = train.attributes[name] >= 0
            probes[name] = linear_probe().fit(f_train[known], train.attributes[name][known])
    t_probe = time.perf_counter() - started

    # the inputs of each condition
    test = load_test(IMAGES, count)
    labels = {n: np.asarray(test_prepared.attributes[n])[:count] for n in names}
    plain = np.stack([model_inputs(image, "off", 64)[0][0] for image in test])  # (a)
    assert np.array_equal(plain, test_prepared.images.transpose(0, 2, 3, 1)), "resize_rgb differs from prepare"
    t0 = time.perf_counter()
    photos = misframed(test, args.seed)
    t_canvas = time.perf_counter() - t0
    t0 = time.perf_counter()
    on, found, why_missed, wrong, missed_bucket, all_bucket = [], [], [], 0, {}, {}
    for i, (canvas, pasted) in enumerate(photos):
        all_bucket[bucket(pasted)] = all_bucket.get(bucket(pasted), 0) + 1
        try:
            crops, placements = model_inputs(canvas, "on", 64, aligner=aligner, largest=True, name=f"{9001 + i:06d}")
        except AlignmentError as exc:
            why_missed.append(str(exc))
            missed_bucket[bucket(pasted)] = missed_bucket.get(bucket(pasted), 0) + 1
            continue
        wrong += not is_pasted_face(placements[0].face, pasted)
        on.append(crops[0])
        found.append(i)
    t_on = time.perf_counter() - t0
    found = np.asarray(found, dtype=np.int64)
    on = np.stack(on)
    off = np.stack([model_inputs(canvas, "off", 64)[0][0] for canvas, _ in photos])  # (c)
    t0 = time.perf_counter()
    auto, auto_aligned = [], []
    for image in test:
        crops, placements = model_inputs(image, "auto", 64, aligner=aligner, largest=True)
        auto.append(crops[0])
        auto_aligned.append(placements[0].aligned)
    t_auto = time.perf_counter() - t0
    auto, auto_aligned = np.stack(auto), np.asarray(auto_aligned)
    realigned, realigned_found = [], []
    for i, image in enumerate(test):
        try:
            realigned.append(model_inputs(image, "on", 64, aligner=aligner, largest=True)[0][0])
            realigned_found.append(i)
        except AlignmentError:
            pass
    realigned, realigned_found = np.stack(realigned), np.asarray(realigned_found, dtype=np.int64)

    # reconstructions and probe features
    t0 = time.perf_counter()
    results = {}
    for key, inputs in (("a", plain), ("b", on), ("c", off), ("auto", auto), ("ref", realigned)):
        recon, feats = encode_decode(model, inputs, args.features)
        correct = np.stack([probes[n].predict(feats) for n in names], axis=1)  # (N, 40) predictions
        results[key] = {"recon": recon, "own": psnr(recon, inputs), "pred": correct, "input": inputs}
    t_model = time.perf_counter() - t0
    rows_of = {"a": np.arange(count), "b": found, "c": np.arange(count), "auto": np.arange(count), "ref": realigned_found}
    truth = np.stack([labels[n] for n in names], axis=1)  # (count, 40)

    def scores(key, subset=None):
        """per-face PSNR against (a)'s input, per-face own PSNR, per-face correct (N, 40), for rows `subset` of the key."""
        r, rows = results[key], rows_of[key]
        take = np.arange(len(rows)) if subset is None else np.searchsorted(rows, subset)
        if subset is not None:
            assert np.array_equal(rows[take], subset)
        rec = r["recon"][take]
        vs_a = psnr(rec, plain[rows[take]])
        right = (r["pred"][take] == truth[rows[take]]).astype(np.float64)
        right[truth[rows[take]] < 0] = np.nan
        input_vs_a = psnr(r["input"][take], plain[rows[take]])
        return vs_a, r["own"][take], right, input_vs_a

    def row(label, key, subset=None):
        vs_a, own, right, input_vs_a = scores(key, subset)
        same = input_vs_a >= 99.0  # psnr gives identical images 100 dB
        same = ("the same" if same.all() else f"{input_vs_a.mean():.2f} dB" if not same.any()
                else f"the same for {same.sum()}; {input_vs_a[~same].mean():.2f} dB for {(~same).sum()}")
        return (f"| {label} | {len(vs_a)} | {vs_a.mean():.2f} dB | {own.mean():.2f} dB | {same} | "
                f"{np.nanmean(np.nanmean(right, axis=0)):.4f} |")

    both = found
    aligned_rows = np.flatnonzero(auto_aligned)
    kept_rows = np.flatnonzero(~auto_aligned)
    header = [("| faces-64 sees | faces | recon PSNR vs (a)'s input | recon PSNR vs its own input | input PSNR vs (a)'s input | "
               "probe accuracy, mean of 40 |"), "|---|---:|---:|---:|---:|---:|"]
    lines = header + [
        row("(a) CelebA-aligned, as it is", "a"),
        row("(a) on the faces found in (b)", "a", both),
        row("(b) misframed, `--align on` (largest face)", "b"),
        row("(c) misframed, `--align off` (canvas resized to 64x64)", "c"),
        row("(c) on the faces found in (b)", "c", both),
        row("(a) with `--align auto`, all", "auto"),
        row("... left as they are", "auto", kept_rows) if len(kept_rows) else "| ... left as they are | 0 | | | | |",
        row("... re-aligned", "auto", aligned_rows) if len(aligned_rows) else "| ... re-aligned | 0 | | | | |",
        row("reference: (a) with `--align on` (every face re-aligned)", "ref"),
    ]

    # paired differences against (a), same faces
    a_vs, _, a_right, _ = scores("a", both)
    b_vs, _, b_right, _ = scores("b")
    c_vs, _, c_right, _ = scores("c", both)
    auto_vs, _, auto_right, _ = scores("auto")
    a_all_vs, _, a_all_right, _ = scores("a")
    per_face = lambda right: np.nanmean(right, axis=1)
    diff = ["| difference, same faces | faces | recon PSNR vs (a)'s input (95% interval) | probe accuracy (95% interval) | target | met |",
            "|---|---:|---:|---:|---|---|"]
    for label, n, d_psnr, d_acc, target, met in (
            ("(b) - (a)", len(both), b_vs - a_vs, per_face(b_right) - per_face(a_right),
             "within 0.5 dB and 0.01 of (a)", None),
            ("(c) - (a)", len(both), c_vs - a_vs, per_face(c_right) - per_face(a_right), "", ""),
            ("(a) `--align auto` - (a)", count, auto_vs - a_all_vs, per_face(auto_right) - per_face(a_all_right),
             "", "")):
        if met is None:
            met = ("PSNR: " + ("yes" if d_psnr.mean() >= -0.5 else "**no**") + "; probe: "
                   + ("yes" if d_acc.mean() >= -0.01 else "**no**"))
        diff.append(f"| {label} | {n} | {interval(d_psnr)} dB | {interval(d_acc)} | {target} | {met} |")

    finding = ["| misframed canvases (640x480, one face each) | value |", "|---|---:|",
               f"| canvases | {count} |",
               f"| a face found (`--align on`, at least 24 px) | {len(found)} ({100 * len(found) / count:.1f}%) |",
               ("| not found, by pasted size (0.25-0.5x / 0.5-1x of CelebA's) | "
                f"{missed_bucket.get('0.25-0.5x', 0)} of {all_bucket.get('0.25-0.5x', 0)} / "
                f"{missed_bucket.get('0.5-1x', 0)} of {all_bucket.get('0.5-1x', 0)} |"),
               f"| largest face found is not the pasted one | {wrong} |",
               f"| `--align auto` on (a): left as they are / re-aligned | {len(kept_rows)} / {len(aligned_rows)} |",
               f"| `--align on` on (a) (reference): a face found | {len(realigned_found)} of {count} |"]
    attrs = [n for n in ("Male", "Smiling", "Eyeglasses", "Young", "Blond_Hair", "Wearing_Hat") if n in names]
    per_attr = ["| probe accuracy, faces found in (b) (reference: those of them it re-aligned) | " + " | ".join(attrs) + " |", "|---|" + "---:|" * len(attrs)]
    ref_right = scores("ref", np.intersect1d(found, realigned_found))[2]
    for label, right in (("(a) as it is", a_right), ("(b) `--align on`", b_right), ("(c) `--align off`", c_right),
                         ("reference: (a) with `--align on`", ref_right)):
        means = np.nanmean(right, axis=0)
        per_attr.append(f"| {label} | " + " | ".join(f"{means[names.index(n)]:.3f}" for n in attrs) + " |")

    cpu = cpu_name()
    print(f"# faces-64 on misframed faces: `--align on` / `off` / `auto` ({args.model}, probe on `{args.features}`)\n")
    print(f"{cpu}, {os.cpu_count()} CPU(s), torch {torch.__version__} ({args.threads} threads), opencv {cv2.__version__}; "
          f"celeba-10k train 1-9000 (probe), test {9001}-{9000 + count}; seed {args.seed}; {time.perf_counter() - started:.0f} s "
          f"(probe fit {t_probe:.0f} s, canvases {t_canvas:.0f} s, `--align on` {t_on:.0f} s, `--align auto` {t_auto:.0f} s, "
          f"model {t_model:.0f} s)\n")
    print("\n".join(finding) + "\n")
    print("\n".join(lines) + "\n")
    print("\n".join(diff) + "\n")
    print("\n".join(per_attr))
    if why_missed:
        print("\nnot found: " + "; ".join(why_missed[:10]) + (" ..." if len(why_missed) > 10 else ""))


if __name__ == "__main__":
    main()
