"""`aekit denoise --runtime onnx-int8` against `--runtime onnx`: the whole-model graph's speed and PSNR.

    python benchmarks/int8_denoise.py                  # faces-64-denoise on 200 celeba-10k test faces; about 2 minutes

The denoiser's whole-model graph (what `aekit denoise` runs on 64x64 faces) in fp32 and int8 ONNX Runtime,
both from the runtime's cache: images/s on a batch of 64 noisy faces with the machine's threads (rounds
interleaved, the best kept, also per CPU-second of this process), and the PSNR of the denoised faces
against the clean ones (gaussian noise, sigma 0.1 of [0, 1], clipped; per image, then averaged), beside
PyTorch's. Faces: celeba-10k's test faces 9001 on, resized to 64x64 (synthetic faces without celeba-10k).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from int8_cpus import faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="faces-64-denoise")
    parser.add_argument("--faces", type=int, default=200)
    parser.add_argument("--sigma", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import torch

    import aekit
    from aekit.runtime import ModelOnRuntime

    model = aekit.load(args.model).eval()
    clean, what = faces(args.faces, model.config.image_size)
    rng = np.random.default_rng(0)
    noisy = np.clip(clean / 255 + rng.normal(0, args.sigma, clean.shape), 0, 1)
    noisy = (noisy * 255).round().astype(np.uint8)
    runtimes = {"torch": ModelOnRuntime(model, "torch"), "onnx": ModelOnRuntime(model, "onnx"),
                "onnx-int8": ModelOnRuntime(model, "onnx-int8")}
    psnr, best, best_cpu = {}, {}, {}
    for name, runtime in runtimes.items():
        out = runtime.denoise(noisy).astype(np.float64) / 255
        mse = np.mean((out - clean / 255) ** 2, axis=(1, 2, 3))
        psnr[name] = float(np.mean(10 * np.log10(1 / np.maximum(mse, 1e-12))))
    batch = noisy[:64]
    for _ in range(args.rounds):  # interleaved, so a busy moment of the machine hits every runtime
        for name, runtime in runtimes.items():
            start, cpu = time.perf_counter(), time.process_time()
            runtime.denoise(batch)
            wall, used = time.perf_counter() - start, time.process_time() - cpu
            best[name] = max(best.get(name, 0), len(batch) / wall)
            best_cpu[name] = max(best_cpu.get(name, 0), len(batch) / used)
    noisy_psnr = float(np.mean(10 * np.log10(1 / np.maximum(np.mean((noisy / 255 - clean / 255) ** 2, axis=(1, 2, 3)), 1e-12))))
    print(f"{args.model} on {what}, gaussian sigma {args.sigma}; {torch.get_num_threads()} threads, best of {args.rounds} rounds; "
          f"noisy input {noisy_psnr:.2f} dB")
    print()
    print("| runtime | images/s | per CPU-second | vs onnx (per CPU-second) | PSNR (dB) |")
    print("|---|---:|---:|---:|---:|")
    for name in runtimes:
        print(f"| {name} | {best[name]:.0f} | {best_cpu[name]:.0f} | {best_cpu[name] / best_cpu['onnx']:.2f}x | {psnr[name]:.2f} |")


if __name__ == "__main__":
    main()
