"""Decoding speed: PyTorch eager against ONNX Runtime (`--runtime onnx`), same model, same latents, same run.

    python benchmarks/decode_runtime.py                    # faces-64 and the article's model (fresh)
    python benchmarks/decode_runtime.py --batch 64 --rounds 5

What `aekit decompress` and `aekit generate` spend their time on: ``model.decode`` (PyTorch, eval mode,
inference mode) and ``aekit.runtime.OnnxDecoder`` (the decoder exported once, BatchNorm folded,
checked against PyTorch). Rounds are interleaved; the best of each is reported, with the largest
difference of the decoded images.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch


def best_rate(fn, count: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return count / best


def main():
    import aekit
    from aekit.runtime import OnnxDecoder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("AEKIT_HOME", tempfile.mkdtemp(prefix="aekit-bench-"))
    torch.manual_seed(0)
    models = {"faces-64 (improved)": aekit.load("faces-64"), "article (fresh)": aekit.create_model("article")}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPU(s); batch {args.batch}; "
          f"best of {args.rounds}\n")
    print("| decoder | PyTorch images/s | ONNX Runtime images/s | speed-up | max difference |")
    print("|---|---:|---:|---:|---:|")
    for name, model in models.items():
        model.eval()
        z = torch.randn(args.batch, model.config.latent_dim)
        onnx = OnnxDecoder(model)
        diff = float((onnx.decode(z) - model.decode(z)).abs().max())  # also exports before timing
        torch_rate = best_rate(lambda: model.decode(z), args.batch, args.rounds)
        onnx_rate = best_rate(lambda: onnx.decode(z), args.batch, args.rounds)
        print(f"| {name} | {torch_rate:.0f} | {onnx_rate:.0f} | {onnx_rate / torch_rate:.2f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
