"""int8 graphs on a CPU without AVX-512 VNNI: 8-bit against 7-bit weights, here and on an emulated AVX2-only CPU.

    python benchmarks/int8_cpus.py                 # faces-64 on 100 celeba-10k test faces; about 12 minutes on 2 cores
    python benchmarks/int8_cpus.py --faces 20      # quicker

Without VNNI, ONNX Runtime's U8S8 kernels multiply with VPMADDUBSW, whose 16-bit sums of two u8 x s8
products saturate with 8-bit weights. `--runtime onnx-int8` therefore quantises weights to 7 bits
(``aekit.onnx_int8``). This script shows what that buys: it quantises faces-64's encoder, decoder and
multiscale-features graphs both ways (same calibration as the runtime), runs every graph with ONNX
Runtime on this CPU and, through QEMU's user-mode emulator with ``-cpu Haswell`` (AVX2, no AVX-512,
no VNNI; ``apt-get install qemu-user``), on an AVX2-only one, and prints per graph and CPU:

- the relative error ``||int8 - fp32|| / ||fp32||`` over the faces and on the worst face (what the
  runtime's check measures, on the CPU at hand, before it uses a graph);
- for the encoder and the features, how often each face's nearest neighbour among the others is the
  one fp32 finds;
- for the decoder, the PSNR of its pictures against fp32 ONNX Runtime's.

The faces are celeba-10k's test faces 9001 on (never trained on), or synthetic faces without it.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from feature_sets import DATA

RUN_GRAPH = ("import sys, numpy as np, onnxruntime as ort; s = ort.InferenceSession(sys.argv[1], "
             "providers=['CPUExecutionProvider']); np.save(sys.argv[3], s.run(None, {s.get_inputs()[0].name: np.load(sys.argv[2])})[0])")


def faces(count: int, size: int) -> tuple[np.ndarray, str]:
    from aekit.synthetic import make_faces

    folder = DATA / "images"
    if folder.is_dir():
        from aekit.images import open_checked, resize_rgb

        files = sorted(folder.iterdir())[9000 : 9000 + count]
        return np.stack([resize_rgb(open_checked(f), size) for f in files]), f"celeba-10k test faces {9001}-{9000 + count}"
    return make_faces(count, seed=7, size=size)[0], "synthetic faces (celeba-10k not found)"


def nearest(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1).astype(np.float64)
    d = (x * x).sum(1)[:, None] + (x * x).sum(1)[None] - 2 * x @ x.T
    np.fill_diagonal(d, np.inf)
    return d.argmin(1)


def run(graph: Path, x_path: Path, out: Path, emulated: bool) -> np.ndarray:
    command = [sys.executable, "-c", RUN_GRAPH, str(graph), str(x_path), str(out)]
    if emulated:
        command = ["qemu-x86_64", "-cpu", "Haswell"] + command
    subprocess.run(command, check=True, capture_output=True)
    return np.load(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="faces-64")
    parser.add_argument("--faces", type=int, default=100)
    args = parser.parse_args()

    import torch

    import aekit
    from aekit import onnx_int8 as int8
    from aekit.pixels import images_to_tensor
    from aekit.runtime import OnnxDecoder, OnnxEncoder, OnnxFeatures

    emulate = shutil.which("qemu-x86_64") is not None
    model = aekit.load(args.model).eval()
    images, what = faces(args.faces, model.config.image_size)
    x = images_to_tensor(images)
    with torch.inference_mode():
        latents = model.encode(x)
    graphs = {"encoder": (OnnxEncoder(model), x), "features-multiscale": (OnnxFeatures(model, "multiscale"), x),
              "decoder": (OnnxDecoder(model), latents)}
    cpus = ["this CPU"] + (["AVX2-only (QEMU Haswell)"] if emulate else [])
    print(f"{args.model} on {what}; this CPU: {platform.processor() or platform.machine()}, int8 flags "
          f"{', '.join(sorted({f for f in Path('/proc/cpuinfo').read_text().split() if 'vnni' in f})) or 'no VNNI'}"
          + ("" if emulate else "; qemu-x86_64 not found: no emulated AVX2 rows"))
    print()
    print("| graph | weights | CPU | relative error, all faces | worst face | same nearest neighbour as fp32 | PSNR against fp32 (dB) |")
    print("|---|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="aekit-int8-cpus-") as tmp:
        folder = Path(tmp)
        for name, (graph, inputs) in graphs.items():
            graph.start()  # the fp32 graph, exported and checked into the runtime's cache
            x_path = folder / f"{name}-x.npy"
            np.save(x_path, np.ascontiguousarray(inputs.numpy(), dtype=np.float32))
            reference = graph.run(inputs.numpy())
            calibration = graph.face_inputs(int8.CALIBRATION_FACES, seed=0).numpy()
            for bits in (8, 7):
                quantised = folder / f"{name}-w{bits}.onnx"
                int8.quantise(graph.fp32_path, quantised, calibration, weight_bits=bits)
                for cpu in cpus:
                    got = run(quantised, x_path, folder / "out.npy", emulated=cpu != "this CPU")
                    overall, worst = int8.relative_error(lambda _: got, lambda _: torch.from_numpy(reference), inputs)
                    same = f"{(nearest(got) == nearest(reference)).mean():.0%}" if name != "decoder" else ""
                    psnr = ""
                    if name == "decoder":
                        mse = np.mean(((got - reference) / 2) ** 2, axis=(1, 2, 3))
                        psnr = f"{np.mean(10 * np.log10(1 / np.maximum(mse, 1e-12))):.1f}"
                    print(f"| {name} | {bits}-bit | {cpu} | {overall:.1%} | {worst:.1%} | {same} | {psnr} |", flush=True)


if __name__ == "__main__":
    main()
