"""Face finding and alignment (aekit_faces) on celeba-10k's test faces: found, how close, how fast.

    python benchmarks/face_align.py                      # the tables (about 2 minutes on 2 cores)
    python benchmarks/face_align.py --variants           # also: fewer looks in the frame, no mirror image
    python benchmarks/face_align.py --first 8001 --count 300 --photos 30 10 --variants   # tuning: training faces
    python benchmarks/face_align.py --search             # also: face search recall@1 with faces-64
    python benchmarks/face_align.py --pictures docs/faces  # also: the pictures in docs/faces/

1. Re-aligning aligned faces: each of celeba-10k's test images 9001-10000 (half-size copies of CelebA's aligned
   178x218 images) goes through ``aekit_faces.detect_faces`` and ``align(..., size=64)``; printed are how many had
   a face, and the PSNR of that 64x64 input against the plain 64x64 resize aekit makes of the same image (the
   input a model trained on CelebA saw), with reference rows: the exact 2x map, and the exact map moved by
   1 frame pixel or turned by 1 degree.
2. Photos: photo-like canvases of 640x480 and 1920x1080 (backgrounds: scikit-image's sample pictures without
   people, resized and cropped; 1-2 or 2-5 test faces pasted each, the face's 178x218 frame scaled to 0.25-1x of
   0.45 of the canvas height (at 640x480: 0.25-1x CelebA's size), turned by up to +-25 degrees, anywhere, not
   overlapping). Printed: faces found, false detections, how far the transform found is from the one the same
   face gets in its aligned image (frame pixels, degrees, scale), the PSNR between the two 64x64 inputs, and
   the speed of detect_faces + align on this machine's CPUs.
3. ``--search``: the index holds the plain 64x64 resizes of the 1,000 test faces (faces-64, default feature set,
   as `aekit similar`); each face found in a canvas is a query, a hit is its own original ranked first. Against
   it, the same faces cropped by YuNet's box alone (CelebA's median box-to-frame relation, no rotation).

Rules: the numbers reported are on the test faces (9001-10000); the template was made from the training faces
(face_template.py), and the refinement's settings were chosen with ``--first 8001`` (training faces 8001-8300).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "data" / "celeba-10k" / "images"
HALF_TO_FRAME = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5]])  # 89x109 pixel centres -> the 178x218 frame
BACKGROUNDS = ("coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "coins", "moon", "brick", "grass",
               "gravel", "retina", "horse", "page", "text", "colorwheel")  # scikit-image's samples with no person or animal face
PROBES = np.array([(0, 0), (177, 0), (0, 217), (177, 217), (88.5, 120)], float)  # frame points compared between transforms


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def load_test(images: Path, count: int, first: int = 9001) -> list[np.ndarray]:
    from aekit.images import open_image

    return [np.asarray(open_image(images / f"{n:06d}.jpg")) for n in range(first, first + count)]


# --- 1. re-aligning aligned faces ---------------------------------------------------------------------------


@dataclass
class Reference:
    """A test face aligned from its own aligned image: the transform (89x109 -> frame) and its 64x64 input."""

    transform: np.ndarray | None
    aligned64: np.ndarray | None
    box_in_frame: np.ndarray | None  # YuNet's box (x, y, w, h) in frame pixels


def realign(test: list[np.ndarray], first: int = 9001) -> tuple[list[Reference], list[str]]:
    from aekit.images import resize_rgb
    from aekit_faces import align, detect_faces
    from aekit_faces.faces import apply, compose, invert, similarity, warp

    refs, values, moves = [], [], []
    for image in test:
        faces = detect_faces(image)
        if not faces:
            refs.append(Reference(None, None, None))
            continue
        face = faces[0]
        aligned = align(image, face, size=64)
        x, y, w, h = face.box
        corner = apply(HALF_TO_FRAME, [(x, y)])[0]
        refs.append(Reference(face.transform, aligned, np.array([*corner, 2 * w, 2 * h])))
        values.append(psnr(aligned, resize_rgb(image, 64)))
        moves.append(np.linalg.norm(apply(compose(face.transform, invert(HALF_TO_FRAME)), PROBES) - PROBES, axis=1).mean())
    reference = {}
    for name, change in (("exact 2x map", similarity()), ("exact map, moved 1 px", similarity(shift=(1, 0))),
                         ("exact map, turned 1 degree", similarity(1, 1, center=(88.5, 120))),
                         ("exact map, scaled 1.02", similarity(1.02, center=(88.5, 120)))):
        transform = compose(change, HALF_TO_FRAME)
        reference[name] = np.mean([psnr(resize_rgb(warp(im, transform), 64), resize_rgb(im, 64)) for im in test])
    found = sum(r.transform is not None for r in refs)
    lines = [f"| re-aligning celeba-10k faces {first}-{first + len(test) - 1} | value |", "|---|---:|",
             f"| faces found | {found} of {len(test)} ({100 * found / len(test):.1f}%) |",
             f"| PSNR of the re-aligned 64x64 input against the plain resize, mean | {np.mean(values):.2f} dB |",
             f"| ... median / 10th percentile / 90th percentile | {np.median(values):.2f} / {np.percentile(values, 10):.2f} / "
             f"{np.percentile(values, 90):.2f} dB |",
             f"| how far the frame moves (corners and centre, 178x218 frame pixels), mean | {np.mean(moves):.2f} px |"]
    lines += [f"| reference: {name} | {value:.2f} dB |" for name, value in reference.items()]
    return refs, lines


# --- 2. photo-like canvases -----------------------------------------------------------------------------------


@dataclass
class Pasted:
    index: int  # which test face
    to_canvas: np.ndarray  # (2, 3): 178x218 frame -> canvas
    height: float  # the pasted frame's height in canvas pixels


def backgrounds() -> list[np.ndarray]:
    import skimage.data

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in BACKGROUNDS:
            image = np.asarray(getattr(skimage.data, name)())
            if image.ndim == 2:
                image = np.repeat(image[:, :, None], 3, axis=2)
            out.append(np.ascontiguousarray(image[:, :, :3]).astype(np.uint8))
    return out


def make_canvas(rng, size, count_range, test, refs, pictures) -> tuple[np.ndarray, list[Pasted]]:
    """A canvas of `size` with test faces pasted at random similarity transforms (not overlapping)."""
    import cv2

    from aekit_faces.faces import compose, similarity, warp

    width, height = size
    picture = pictures[rng.integers(len(pictures))]
    cover = max(width / picture.shape[1], height / picture.shape[0]) * rng.uniform(1.0, 1.5)
    big = cv2.resize(picture, (int(np.ceil(picture.shape[1] * cover)), int(np.ceil(picture.shape[0] * cover))),
                     interpolation=cv2.INTER_CUBIC if cover > 1 else cv2.INTER_AREA)
    x0, y0 = rng.integers(0, big.shape[1] - width + 1), rng.integers(0, big.shape[0] - height + 1)
    canvas = np.ascontiguousarray(big[y0:y0 + height, x0:x0 + width])
    pasted, circles = [], []
    usable = [i for i, r in enumerate(refs) if r.transform is not None]
    for _ in range(rng.integers(count_range[0], count_range[1] + 1)):
        for _attempt in range(50):
            frame_height = rng.uniform(0.25, 1.0) * 0.45 * height
            scale = frame_height / 218.0
            angle = rng.uniform(-25, 25)
            radius = 0.5 * np.hypot(178, 218) * scale
            cx, cy = rng.uniform(radius * 0.6, width - radius * 0.6), rng.uniform(radius * 0.6, height - radius * 0.6)
            if all(np.hypot(cx - x, cy - y) > radius + r for x, y, r in circles):
                break
        else:
            continue
        circles.append((cx, cy, radius))
        index = int(rng.choice(usable))
        to_canvas = compose(similarity(1, 0, (cx - 88.5, cy - 108.5)), similarity(scale, angle, center=(88.5, 108.5)))
        # the aligned face with a reflected margin (so any frame around the face lies on it), feathered at its edge
        source = test[index]
        margin = 30
        padded = cv2.copyMakeBorder(source, margin, margin, margin, margin, cv2.BORDER_REFLECT_101)
        half_to_canvas = compose(to_canvas, compose(HALF_TO_FRAME, np.array([[1, 0, -margin], [0, 1, -margin]], float)))
        patch = warp(padded, half_to_canvas, (width, height), border="constant")
        mask = np.zeros(padded.shape[:2], np.float32)
        mask[4:-4, 4:-4] = 1.0
        mask = cv2.GaussianBlur(mask, (0, 0), 2.0)
        alpha = warp(np.repeat((mask * 255).astype(np.uint8)[:, :, None], 3, axis=2), half_to_canvas, (width, height),
                     border="constant").astype(np.float32) / 255.0
        canvas = np.clip(canvas * (1 - alpha) + patch * alpha + 0.5, 0, 255).astype(np.uint8)
        pasted.append(Pasted(index, to_canvas, frame_height))
    return canvas, pasted


def canvases(test, refs, size, count, count_range, seed) -> list[tuple[np.ndarray, list[Pasted]]]:
    rng = np.random.default_rng(seed)
    pictures = backgrounds()
    return [make_canvas(rng, size, count_range, test, refs, pictures) for _ in range(count)]


def evaluate(photos, test, refs, detect=None) -> dict:
    """Match the faces found in each canvas to those pasted; accuracy against each face's own alignment; timing."""
    from aekit_faces import align, detect_faces
    from aekit_faces.faces import apply, compose, invert

    detect = detect or detect_faces
    found = pasted_count = false = 0
    moves, angles, scales, values, seconds, by_size = [], [], [], [], 0.0, {}
    matches = []  # (test index, aligned 64x64, canvas, face) for --search
    for canvas, pasted in photos:
        start = time.perf_counter()
        faces = detect(canvas)
        crops = [align(canvas, face) for face in faces]  # the 178x218 frames `aekit faces` writes
        seconds += time.perf_counter() - start
        del crops
        pasted_count += len(pasted)
        taken = set()
        for p in pasted:
            centre = apply(p.to_canvas, [(88.5, 120)])[0]
            best = None
            for k, face in enumerate(faces):
                distance = np.linalg.norm(face.to_photo([(88.5, 120)])[0] - centre)
                if k not in taken and distance < 0.25 * p.height and (best is None or distance < best[1]):
                    best = (k, distance)
            bucket = "0.25-0.5x" if p.height < 0.5 * 0.45 * canvas.shape[0] else "0.5-1x"
            hit = by_size.setdefault(bucket, [0, 0])
            hit[1] += 1
            if best is None:
                continue
            taken.add(best[0])
            face = faces[best[0]]
            found += 1
            hit[0] += 1
            # the transform this face should get: its own aligned image's (frame -> frame), after undoing the paste
            expected = compose(compose(refs[p.index].transform, invert(HALF_TO_FRAME)), invert(p.to_canvas))
            error = compose(face.transform, invert(expected))  # frame -> frame; the identity when exact
            moves.append(np.linalg.norm(apply(error, PROBES) - PROBES, axis=1).mean())
            angles.append(abs(np.degrees(np.arctan2(error[1, 0], error[0, 0]))))
            scales.append(abs(np.sqrt(abs(np.linalg.det(error[:, :2]))) - 1))
            aligned64 = align(canvas, face, size=64)
            values.append(psnr(aligned64, refs[p.index].aligned64))
            matches.append((p.index, aligned64, canvas, face))
        false += len(faces) - len(taken)
    return {"found": found, "pasted": pasted_count, "false": false, "moves": moves, "angles": angles,
            "scales": scales, "psnr": values, "seconds": seconds, "photos": len(photos), "by_size": by_size,
            "matches": matches}


def photo_rows(label: str, result: dict) -> list[str]:
    r = result
    sizes = ", ".join(f"{k}: {v[0]}/{v[1]}" for k, v in sorted(r["by_size"].items()))
    return [f"| {label} | {r['photos']} | {r['found']} of {r['pasted']} ({100 * r['found'] / max(r['pasted'], 1):.1f}%; "
            f"{sizes}) | {r['false']} | {np.mean(r['moves']):.2f} px | {np.mean(r['angles']):.2f} | "
            f"{100 * np.mean(r['scales']):.1f}% | {np.mean(r['psnr']):.2f} dB | {r['found'] / r['seconds']:.1f} | "
            f"{r['photos'] / r['seconds']:.1f} |"]


PHOTO_HEADER = ["| photos | count | faces found (by pasted size) | false | frame moves | degrees | scale | PSNR 64x64 | faces/s | photos/s |",
                "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]


# --- 3. face search -------------------------------------------------------------------------------------------


def box_crop(canvas, face, box_to_frame) -> np.ndarray:
    """The 64x64 input from YuNet's box alone: scaled and shifted by CelebA's median box-to-frame relation, never turned."""
    from aekit_faces import align

    x, y, w, h = face.box
    (fx, fy, fw, fh) = box_to_frame
    scale = 0.5 * (fw / w + fh / h)
    return align(canvas, np.array([[scale, 0, fx - scale * x], [0, scale, fy - scale * y]]), size=64)


def search_rows(test, refs, matches, model_name: str) -> list[str]:
    import torch

    import aekit
    from aekit import feature_sets
    from aekit.images import resize_rgb
    from aekit_embed.search import FaceIndex

    torch.set_num_threads(os.cpu_count() or 1)
    model = aekit.load(model_name).eval()
    index = np.stack([resize_rgb(image, 64) for image in test])
    boxes = np.stack([r.box_in_frame for r in refs if r.box_in_frame is not None])
    box_to_frame = np.median(boxes, axis=0)
    truth = np.array([m[0] for m in matches])
    kind = feature_sets.DEFAULT
    found = FaceIndex(model.features(index, kind).numpy(), "numpy")
    rows = ["| face search (faces-64 `%s`, 1,000 test faces indexed) | queries | recall@1 |" % kind, "|---|---:|---:|"]
    for label, queries in (("aligned by aekit_faces (landmarks, turned upright)", np.stack([m[1] for m in matches])),
                           ("cropped by YuNet's box (scaled and shifted, not turned)",
                            np.stack([box_crop(m[2], m[3], box_to_frame) for m in matches]))):
        hits, _ = found.search(model.features(queries, kind).numpy(), 1)
        rows.append(f"| {label} | {len(queries)} | {np.mean(hits[:, 0] == truth):.3f} |")
    return rows


# --- pictures -----------------------------------------------------------------------------------------------------


def save_pictures(folder: Path, test, refs, photos) -> None:
    """docs pictures: a canvas with its faces marked, and the faces found beside the plain resizes of their originals."""
    from PIL import Image, ImageDraw

    from aekit import io
    from aekit.images import image_grid, resize_rgb
    from aekit_faces import align, detect_faces

    folder.mkdir(parents=True, exist_ok=True)
    tilt = lambda p: abs(np.degrees(np.arctan2(p.to_canvas[1, 0], p.to_canvas[0, 0])))  # noqa: E731
    canvas, pasted = max(photos[:30], key=lambda photo: (len(photo[1]), max(tilt(p) for p in photo[1])))
    faces = detect_faces(canvas)
    marked = Image.fromarray(canvas)
    draw = ImageDraw.Draw(marked)
    for k, face in enumerate(faces):
        x, y, w, h = face.box
        draw.rectangle([x, y, x + w, y + h], outline=(255, 40, 40), width=2)
        for px, py in face.landmarks:
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=(40, 255, 40))
        draw.text((x + 2, y + h + 2), f"{k}: {face.score:.2f}", fill=(255, 255, 0))
    io.save_image(folder / "photo-found.jpg", marked, quality=90)
    rows = [np.stack([align(canvas, face, size=64) for face in faces])]
    originals = []
    for face in faces:
        centre = face.to_photo([(88.5, 120)])[0]
        nearest = min(pasted, key=lambda p: np.linalg.norm(p.to_canvas[:, :2] @ [88.5, 120] + p.to_canvas[:, 2] - centre))
        originals.append(resize_rgb(test[nearest.index], 64))
    rows.append(np.stack(originals))
    io.save_image(folder / "aligned-vs-original.png",
                  image_grid(rows, ["aligned from the photo", "CelebA's own, resized"], scale=2))
    print(f"wrote {folder / 'photo-found.jpg'} and {folder / 'aligned-vs-original.png'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(IMAGES), help="celeba-10k's images folder")
    parser.add_argument("--count", type=int, default=1000, help="faces FIRST..FIRST+COUNT-1")
    parser.add_argument("--first", type=int, default=9001,
                        help="the first face: 9001 (the test faces; reported numbers), or a training face to tune on (e.g. 8001)")
    parser.add_argument("--photos", type=int, nargs=2, default=(100, 30), metavar=("N640", "N1080"),
                        help="canvases of 640x480 and of 1920x1080")
    parser.add_argument("--variants", action="store_true", help="also: fewer looks in the frame, no mirror image")
    parser.add_argument("--search", action="store_true", help="also: face search recall@1 with --model")
    parser.add_argument("--model", default="faces-64")
    parser.add_argument("--pictures", default=None, metavar="DIR", help="write the docs pictures into DIR")
    args = parser.parse_args()
    images = Path(args.images)
    if not images.is_dir():
        raise SystemExit(f"{images}: not found (celeba-10k lives in ../shared/data/celeba-10k)")
    import cv2

    import aekit_faces.faces as faces_module
    from aekit_faces import detect_faces

    count = min(args.count, 10001 - args.first)
    if args.first <= 9000 < args.first + count - 1:
        raise SystemExit("--first and --count mix training and test faces: tune on 1-9000, report on 9001-10000")
    test = load_test(images, count, args.first)
    refs, lines = realign(test, args.first)
    print(f"\nceleba-10k faces; opencv {cv2.__version__} ({cv2.getNumThreads()} threads), "
          f"{os.cpu_count()} CPU(s), {platform.machine()}\n")
    print("\n".join(lines))
    suites = [("640x480", (640, 480), args.photos[0], (1, 2), 1), ("1920x1080", (1920, 1080), args.photos[1], (2, 5), 2)]
    made = {label: canvases(test, refs, size, count, counts, seed) for label, size, count, counts, seed in suites}
    print("\n" + "\n".join(PHOTO_HEADER))
    results = {}
    for label, photos in made.items():
        if not photos:
            continue
        detect_faces(photos[0][0])  # the detector is made once per thread: not timed
        results[label] = evaluate(photos, test, refs)
        print("\n".join(photo_rows(label, results[label])))
    if args.variants:
        real = faces_module.frame_landmarks
        variants = [(f"{n} look(s) in the frame" if n else "first landmarks only", lambda image, n=n: detect_faces(image, refine=n), None)
                    for n in (0, 1, 2)]
        variants.append(("no mirror image", detect_faces, lambda frame, *a, **k: real(frame, mirror=False)))
        for name, detect, patched in variants:
            faces_module.frame_landmarks = patched or real
            try:
                for label, photos in made.items():
                    if photos:
                        print("\n".join(photo_rows(f"{label}, {name}", evaluate(photos, test, refs, detect))))
            finally:
                faces_module.frame_landmarks = real
    if args.search:
        matches = [m for r in results.values() for m in r["matches"]]
        print("\n" + "\n".join(search_rows(test, refs, matches, args.model)))
    if args.pictures:
        save_pictures(Path(args.pictures), test, refs, made["640x480"])


if __name__ == "__main__":
    main()
