"""Where the autoencoder stands as a codec: latent dtypes against JPEG and WebP at matched sizes.

    python benchmarks/codec_table.py --model runs/celeba --data ../shared/data/celeba-10k/images[9000:]

Prints a Markdown table (bytes per image, PSNR and SSIM on the [0, 1] scale, mean over images) for the
model's float32 / float16 / int8 latents (aekit_compress's own storage code) and for Pillow's JPEG and
WebP at the qualities whose mean size comes closest to the latents' sizes. All on the same images.
"""

import argparse
import io as stdio

import numpy as np
import torch
from PIL import Image

import aekit
from aekit.data import prepare
from aekit.images import to_uint8_hwc
from aekit.metrics import psnr, ssim
from aekit_compress import DTYPES, decode_from_storage, encode_for_storage


def codec_round_trip(images: np.ndarray, fmt: str, quality: int):
    """Mean bytes and decoded images for a Pillow codec at one quality."""
    sizes, decoded = [], []
    for image in images:
        buffer = stdio.BytesIO()
        Image.fromarray(image).save(buffer, format=fmt, quality=quality)
        sizes.append(buffer.tell())
        buffer.seek(0)
        decoded.append(np.asarray(Image.open(buffer).convert("RGB")))
    return float(np.mean(sizes)), np.stack(decoded)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="held-out images, e.g. ../shared/data/celeba-10k/images[9000:]")
    args = parser.parse_args()

    model = aekit.load(args.model)
    images = np.ascontiguousarray(prepare(args.data, model.config.image_size).images.transpose(0, 2, 3, 1))
    latents = model.encode(images).numpy()
    rows = []
    for dtype in DTYPES:
        arrays = encode_for_storage(latents, dtype)
        payload = sum(a.nbytes for a in arrays.values()) / len(images)
        decoded = to_uint8_hwc(model.decode(torch.from_numpy(decode_from_storage(arrays, dtype))))
        rows.append((f"aekit latents {dtype}", payload, psnr(decoded, images).mean(), ssim(decoded, images).mean()))
    targets = sorted({round(r[1]) for r in rows})
    for fmt in ("JPEG", "WEBP"):
        tried = {q: codec_round_trip(images, fmt, q) for q in (1, 2, 5, 10, 20, 30, 50)}
        chosen = sorted({min(tried, key=lambda q: abs(tried[q][0] - t)) for t in targets})
        for q in chosen:
            size, decoded = tried[q]
            rows.append((f"{fmt} quality {q}", size, psnr(decoded, images).mean(), ssim(decoded, images).mean()))
    print(f"{len(images)} images from {args.data}, model {args.model} ({aekit.model_fingerprint(model)})\n")
    print("| method | bytes per image | PSNR (dB) | SSIM |")
    print("|---|---|---|---|")
    for name, size, p, s in rows:
        print(f"| {name} | {size:.0f} | {p:.2f} | {s:.4f} |")


if __name__ == "__main__":
    main()
