"""Editing a face in a photo, in place: faces-64's attribute directions carried back by the aligner's ``put_back``.

    python benchmarks/photo_edit.py                                  # 100 canvases, 4 attributes (about 2-5 minutes on 2 cores)
    python benchmarks/photo_edit.py --pictures docs/faces            # also: docs/faces/photo-edit.png and photo.jpg
    python benchmarks/photo_edit.py --count 20 --attributes Smiling  # a quick look

Canvases: celeba-10k's test faces 9001-9000+COUNT, each misframed into its own 640x480 photo-like canvas exactly as
``face_misframed.py`` does (scaled 0.25-1x, turned up to +-25 degrees, shifted; same seed). In each, the largest
face the aligner finds (at least 24 px, as ``--align on``) is cropped to 64x64 and encoded (z); for each attribute
the edit is ``change = decode(z + d) - decode(z)`` in grey levels (d: the shipped direction of faces-64,
``aekit_edit.load_directions``, times the amount), and ``edited = aligner.put_back(photo, face, change)``.

Printed, per attribute:

- (i) pixels outside the aligner's mask (``aligner.mask(...) == 0``) that differ from the photo, bit for bit (must be 0);
- (ii) an independent judge's probability of the attribute on the photo's face before (the aligned 64x64 crop of the
  photo) and after (the same crop, same transform, of the edited photo), mean rise; target: >= 0.2 on the faces
  without the attribute. Two judges, both a logistic regression per attribute on PCA-256 of pixels of the
  training faces 1-9000 (``edit_directions.Judge``): fitted on the decoded training faces (as edit_directions.py)
  and on the training images themselves (closer to a photo's crop, which is not decoded). For reference: the
  same edit judged on the model's own outputs, decode(z) against decode(z + d); and the crop with the change added
  everywhere (crop + change, no mask), which tells what the mask leaves out;
- (iii) sharpness inside the face (mask > 0.5): mean squared Laplacian (3x3) of the grey photo, for the photo, the
  edited photo, and the decoded edited face pasted in instead (decode(z + d) resized to the frame, carried into the
  photo and blended with the same mask: what replacing the face by the model's output would give).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edit_directions import Judge, decode_all
from face_align import IMAGES, Reference, backgrounds, load_test, make_canvas
from face_misframed import CANVAS, cpu_name, is_pasted_face, misframed

from aekit_edit.photos import grey_levels  # noqa: E402  (what aekit edit puts back: float grey levels, unrounded)

DATA = IMAGES.parent
ATTRIBUTES = ("Smiling", "Eyeglasses", "Blond_Hair", "Male")
GREY = np.array([0.299, 0.587, 0.114], np.float32)


def sharpness(image: np.ndarray, inside: np.ndarray) -> float:
    """Mean squared Laplacian of the grey image over the pixels `inside`."""
    import cv2

    grey = image.astype(np.float32) @ GREY
    return float(np.mean(cv2.Laplacian(grey, cv2.CV_32F)[inside] ** 2))


def paste(photo: np.ndarray, face, output: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The model's 64x64 output (grey levels) resized to the frame, carried into the photo and blended by `mask`."""
    import cv2
    from aekit_faces.faces import FRAME

    frame = cv2.resize(np.ascontiguousarray(output, dtype=np.float32), FRAME, interpolation=cv2.INTER_CUBIC)
    back = cv2.warpAffine(frame, np.asarray(face.transform, np.float64), (photo.shape[1], photo.shape[0]),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    m = mask[:, :, None]
    return np.clip(np.rint(photo * (1 - m) + back * m), 0, 255).astype(np.uint8)


def nchw(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2))


# --- the picture --------------------------------------------------------------------------------------------------


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # an old Pillow: the bitmap font
        return ImageFont.load_default()


def _titled(title: str, image, width: int | None = None):
    from PIL import Image, ImageDraw

    width = width or image.width
    out = Image.new("RGB", (width, image.height + 30), "white")
    out.paste(image, ((width - image.width) // 2, 30))
    ImageDraw.Draw(out).text((4, 5), title, fill="black", font=_font(18))
    return out


def _tiles(rows: list[list[tuple[str, np.ndarray]]], tile: int = 128):
    """A grid of captioned 64x64 tiles (nearest-neighbour upscaled to `tile`)."""
    from PIL import Image, ImageDraw

    cols = max(len(r) for r in rows)
    cap = 22
    out = Image.new("RGB", (cols * (tile + 8), len(rows) * (tile + cap + 8)), "white")
    draw = ImageDraw.Draw(out)
    for r, row in enumerate(rows):
        for c, (caption, image) in enumerate(row):
            x, y = c * (tile + 8) + 4, r * (tile + cap + 8) + 4
            out.paste(Image.fromarray(image).resize((tile, tile), Image.NEAREST), (x, y))
            draw.text((x, y + tile + 2), caption, fill="black", font=_font(14))
    return out


def save_picture(path: Path, model, directions, aligner, test, edit: tuple[str, float], labels, seed: int = 3) -> str:
    """photo -> faces found -> aligned crops -> the photo with the largest face edited, side by side."""
    from PIL import Image, ImageDraw

    name, amount = edit
    rng = np.random.default_rng(seed)
    pictures = backgrounds()
    refs = [Reference(np.eye(2, 3), None, None)] * len(test)
    for _ in range(40):  # the first canvas with two faces found, the largest without the attribute (so it shows)
        canvas, pasted = make_canvas(rng, CANVAS, (2, 2), test, refs, pictures)
        faces = [f for f in aligner.find(canvas) if f.size >= 24]
        if len(faces) < 2:
            continue
        centre = faces[0].to_photo([(88.5, 120.0)])[0]
        near = min(pasted, key=lambda p: np.linalg.norm(p.to_canvas[:, :2] @ [88.5, 120.0] + p.to_canvas[:, 2] - centre))
        if labels[name][near.index] == 0:
            break
    # the photo as the README's example reads it: written as docs/faces/photo.jpg and decoded again
    from aekit import io
    from aekit.images import open_image

    io.save_image(path.parent / "photo.jpg", Image.fromarray(canvas), quality=92)
    canvas = np.asarray(open_image(path.parent / "photo.jpg"), dtype=np.uint8)
    faces = [f for f in aligner.find(canvas) if f.size >= 24]
    crops = [aligner.crop(canvas, f, 64) for f in faces]
    z = model.encode(np.stack(crops[:1])).numpy()
    before, after = grey_levels(model.decode(np.concatenate([z, directions.apply(z, [(name, amount)])])))
    edited = aligner.put_back(canvas, faces[0], after - before)
    marked = Image.fromarray(canvas)
    draw = ImageDraw.Draw(marked)
    for k, face in enumerate(faces):
        x, y, w, h = face.box
        draw.rectangle([x, y, x + w, y + h], outline=(255, 40, 40), width=3)
        for px, py in face.landmarks:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=(40, 255, 40))
        label = f"face {k}: {face.score:.2f}"
        draw.rectangle(draw.textbbox((x, y + h + 4), label, font=_font(18)), fill=(0, 0, 0))
        draw.text((x, y + h + 4), label, fill=(255, 255, 0), font=_font(18))
    u8 = lambda a: np.clip(np.rint(a), 0, 255).astype(np.uint8)
    tiles = _tiles([[("face 0", crops[0]), ("decoded", u8(before)), (f"{name} {amount:+g}", u8(after))]]
                   + [[(f"face {k}", crop)] for k, crop in enumerate(crops[1:], 1)])
    mask = aligner.mask(canvas.shape, faces[0])
    ys, xs = np.nonzero(mask > 0)
    pad = 10
    y0, y1, x0, x1 = max(0, ys.min() - pad), min(canvas.shape[0], ys.max() + pad), max(0, xs.min() - pad), min(canvas.shape[1], xs.max() + pad)
    zoom_h = 215
    zoom = lambda a: Image.fromarray(a[y0:y1, x0:x1]).resize((max(1, round((x1 - x0) * zoom_h / (y1 - y0))), zoom_h), Image.LANCZOS)
    zb, za = zoom(canvas), zoom(edited)
    zooms = Image.new("RGB", (max(zb.width, 120), 2 * zoom_h + 48), "white")
    zooms.paste(zb, (0, 22))
    zooms.paste(za, (0, zoom_h + 48))
    ImageDraw.Draw(zooms).text((2, 2), "before:", fill="black", font=_font(16))
    ImageDraw.Draw(zooms).text((2, zoom_h + 26), "after:", fill="black", font=_font(16))
    panels = [_titled("1. photo (640x480)", Image.fromarray(canvas)), _titled("2. faces found", marked),
              _titled("3. aligned crops (64x64)", tiles), _titled(f"4. face 0 edited in place: {name} {amount:+g}", Image.fromarray(edited)),
              _titled("face 0, closer", zooms)]
    gap = 36
    height = max(p.height for p in panels)
    out = Image.new("RGB", (sum(p.width for p in panels) + gap * (len(panels) - 1) + 16, height + 16), "white")
    draw = ImageDraw.Draw(out)
    x = 8
    for k, panel in enumerate(panels):
        out.paste(panel, (x, 8))
        x += panel.width
        if k < len(panels) - 1:
            draw.text((x + 6, 8 + height // 2), "->", fill="black", font=_font(22))
            x += gap
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path)
    outside = int(((edited != canvas).any(axis=2) & (mask == 0)).sum())
    return f"wrote {path} ({out.width}x{out.height}; {len(faces)} faces found, face 0 edited; {outside} pixels changed outside its mask)"


# --- the benchmark ------------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="faces-64")
    parser.add_argument("--count", type=int, default=100, help="canvases: test faces 9001..9000+COUNT")
    parser.add_argument("--attributes", default=",".join(ATTRIBUTES))
    parser.add_argument("--amount", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1, help="the canvases' random generator (as face_misframed.py)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pictures", default=None, metavar="DIR", help="also write DIR/photo-edit.png")
    parser.add_argument("--picture-seed", type=int, default=3,
                        help="the picture's canvas (two faces; 3: a clear example, chosen by eye among seeds 1-6)")
    args = parser.parse_args()
    if not (DATA / "attributes.csv").is_file():
        sys.exit(f"celeba-10k is not at {DATA}; this benchmark needs its images and attributes")
    import cv2
    import torch
    from aekit_edit import load_directions
    from aekit_generate import encode_uint8

    import aekit
    from aekit.alignment import MIN_FACE_SIZE, get_aligner
    from aekit.data import prepare

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    started = time.perf_counter()
    names = [n.strip() for n in args.attributes.split(",") if n.strip()]
    count = max(1, min(args.count, 1000))
    model = aekit.load(args.model).eval()
    directions = load_directions(model)
    for name in names:
        directions.index(name)
    aligner = get_aligner()

    train = prepare(f"{DATA}[:9000]", 64, progress=False)
    labels_train = {n: np.asarray(train.attributes[n]) for n in names}
    judges = {"decoded": Judge(decode_all(model, encode_uint8(model, np.asarray(train.images))), labels_train),
              "plain": Judge(np.asarray(train.images), labels_train)}
    t_judges = time.perf_counter() - started
    test_labels = prepare(f"{DATA}[9000:{9000 + count}]", 64, progress=False).attributes
    labels = {n: np.asarray(test_labels[n]) for n in names}

    t0 = time.perf_counter()
    test = load_test(IMAGES, count)
    photos = misframed(test, args.seed)
    kept, elsewhere = [], 0  # (test index, canvas, face, crop) where the largest face found is the one pasted
    for i, (canvas, pasted) in enumerate(photos):
        faces = [f for f in aligner.find(canvas) if f.size >= MIN_FACE_SIZE]
        if faces and not is_pasted_face(faces[0], pasted):
            elsewhere += 1
        elif faces:
            kept.append((i, canvas, faces[0], aligner.crop(canvas, faces[0], 64)))
    t_find = time.perf_counter() - t0
    rows = np.array([k[0] for k in kept])
    crops = np.stack([k[3] for k in kept])
    masks = [aligner.mask(k[1].shape, k[2]) for k in kept]

    t0 = time.perf_counter()
    z = model.encode(crops).numpy()
    base_decoded = model.decode(z)
    base = grey_levels(base_decoded)
    prob_crop = {j: judge.probabilities(nchw(crops)) for j, judge in judges.items()}
    sharp_photo = np.array([sharpness(k[1], m > 0.5) for k, m in zip(kept, masks)])
    results = {}
    for name in names:
        moved = directions.apply(z, [(name, args.amount)])
        moved_decoded = model.decode(moved)
        out = grey_levels(moved_decoded)
        outside, inside_changed, after_crops, sharp_edit, sharp_paste = [], [], [], [], []
        for (i, canvas, face, crop), mask, change, output in zip(kept, masks, out - base, out):
            edited = aligner.put_back(canvas, face, change)
            differs = (edited != canvas).any(axis=2)
            outside.append(int((differs & (mask == 0)).sum()))
            inside_changed.append(int((differs & (mask > 0)).sum()))
            after_crops.append(aligner.crop(edited, face, 64))
            sharp_edit.append(sharpness(edited, mask > 0.5))
            sharp_paste.append(sharpness(paste(canvas, face, output, mask), mask > 0.5))
        after_crops = nchw(np.stack(after_crops))
        judged = {j: (prob_crop[j][name], judge.probabilities(after_crops)[name]) for j, judge in judges.items()}
        u8 = lambda x: ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
        judged["decoded, model outputs"] = (judges["decoded"].probabilities(u8(base_decoded))[name],
                                            judges["decoded"].probabilities(u8(moved_decoded))[name])
        unmasked = np.clip(np.rint(crops.astype(np.float32) + (out - base)), 0, 255).astype(np.uint8)
        judged["plain, crop + change without the mask"] = (prob_crop["plain"][name],
                                                           judges["plain"].probabilities(nchw(unmasked))[name])
        results[name] = {"outside": np.array(outside), "inside": np.array(inside_changed), "judged": judged,
                         "sharp_edit": np.array(sharp_edit), "sharp_paste": np.array(sharp_paste)}
    t_edit = time.perf_counter() - t0

    cpu = cpu_name()
    print(f"# Editing faces in photos in place ({args.model}, shipped directions, amount {args.amount:+g})\n")
    print(f"{cpu}, {os.cpu_count()} CPU(s), torch {torch.__version__} ({args.threads} threads), opencv {cv2.__version__}; "
          f"canvases of test faces 9001-{9000 + count} (640x480, one face each, seed {args.seed}); judges fitted on "
          f"train 1-9000; {time.perf_counter() - started:.0f} s (judges {t_judges:.0f} s, finding faces {t_find:.0f} s, "
          f"edits {t_edit:.0f} s)\n")
    print(f"Faces found (the largest, at least {MIN_FACE_SIZE:g} px, as `--align on`): {len(kept) + elsewhere} of {count} "
          f"canvases; {elsewhere} of them not the face pasted (left out); {len(kept)} edited.\n")
    print("| edit | canvases | (i) pixels changed outside the mask (total; canvases with any) | pixels changed inside, mean |")
    print("|---|---:|---:|---:|")
    for name in names:
        r = results[name]
        print(f"| {name} {args.amount:+g} | {len(kept)} | {r['outside'].sum()}; {(r['outside'] > 0).sum()} | {r['inside'].mean():.0f} |")

    print("\n| (ii) judge | edit | faces without / with it | without the attribute: P before | after | rise | "
          "with it: P before | after | rise | all faces: rise |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        without, having = labels[name][rows] == 0, labels[name][rows] == 1
        for judge, (p0, p1) in results[name]["judged"].items():
            cells = []
            for side in (without, having):
                cells += ([f"{p0[side].mean():.3f}", f"{p1[side].mean():.3f}", f"{(p1 - p0)[side].mean():+.3f}"]
                          if side.any() else ["", "", ""])
            print(f"| {judge} | {name} {args.amount:+g} | {int(without.sum())} / {int(having.sum())} | "
                  + " | ".join(cells) + f" | {(p1 - p0).mean():+.3f} |")

    print("\n| (iii) sharpness inside the face (mean squared Laplacian, mask > 0.5) | edit | mean | relative to the photo |")
    print("|---|---|---:|---:|")
    print(f"| photo | | {sharp_photo.mean():.1f} | 1.000 |")
    for name in names:
        r = results[name]
        print(f"| edited photo (put_back) | {name} {args.amount:+g} | {r['sharp_edit'].mean():.1f} | "
              f"{np.mean(r['sharp_edit'] / sharp_photo):.3f} |")
        print(f"| decoded edited face pasted instead | {name} {args.amount:+g} | {r['sharp_paste'].mean():.1f} | "
              f"{np.mean(r['sharp_paste'] / sharp_photo):.3f} |")
    print("\n(relative: the mean over canvases of each canvas's ratio)")
    if args.pictures:
        print("\n" + save_picture(Path(args.pictures) / "photo-edit.png", model, directions, aligner, test,
                                  (names[0], args.amount), labels, args.picture_seed))


if __name__ == "__main__":
    main()
