"""int8 against fp32 ONNX Runtime (`--runtime onnx-int8` against `--runtime onnx`): speed, PSNR, linear probe.

    python benchmarks/int8_runtime.py                  # faces-64 on celeba-10k; about 8 minutes on 2 cores
    python benchmarks/int8_runtime.py --rounds 9 --no-variants   # only fp32 and what onnx-int8 runs

The fp32 rows run the graphs `--runtime onnx` runs, the `onnx-int8` row the ones `--runtime onnx-int8`
makes from them (``aekit.onnx_int8``: U8S8, fully connected layers in float, calibrated on 256
synthetic faces), both from the runtime's cache. The other int8 rows show the alternatives, made here
with ``onnxruntime.quantization`` from the same fp32 graphs: static quantisation of every layer,
calibrated on 256 celeba-10k training faces (seeded, of 1-9000) or on the synthetic faces, in ONNX
Runtime's default QDQ S8S8 layout or in U8S8; and dynamic quantisation. Every decoder is calibrated on
its calibration faces' fp32 latents.

Measured in the same run on celeba-10k's split (its README): encoder and decoder images/s on a batch of
256 test faces with 2 threads (rounds interleaved, the best kept; also per CPU-second of this process,
steadier on a shared machine); PSNR of the 1,000 test faces' reconstruction by that row's encoder and
decoder (per image on the [0, 1] scale, then averaged); and the mean linear-probe accuracy over the 40
attributes (``feature_sets.py``'s probe: standardised LogisticRegression, C 0.01, fitted on the row's
latents of training faces 1-9000, scored on test faces 9001-10000). An int8 row is worth shipping when
its probe is within 0.005 and its PSNR within 0.2 dB of fp32's and its encoder at least 1.2x as fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from feature_sets import DATA, labels_for, probe

PROBE_TOLERANCE = 0.005
PSNR_TOLERANCE_DB = 0.2
MEANINGFUL_SPEED_UP = 1.2
SHIPPED = "`onnx-int8`: U8S8 with 7-bit weights, FC float, synthetic calibration"


def session(path: Path, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(graph, x: np.ndarray, batch: int = 256) -> np.ndarray:
    name = graph.get_inputs()[0].name
    return np.concatenate([graph.run(None, {name: np.ascontiguousarray(x[i : i + batch])})[0] for i in range(0, len(x), batch)])


def signed(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 3, S, S) -> float32 in [-1, 1], the graphs' input."""
    return (images.astype(np.float32) - 127.5) / 127.5


def quantise_variant(fp32: Path, out: Path, calibration: np.ndarray | None, layout: str) -> Path:
    """An alternative int8 graph of `fp32`: every layer static "qdq-s8s8" or "u8s8" calibrated on `calibration`, or "dynamic"."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = out.with_suffix(".prepared.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)  # as aekit.onnx_int8 does
    if layout == "dynamic":
        quantize_dynamic(str(prepared), str(out), weight_type=QuantType.QUInt8)  # ORT's CPU ConvInteger: uint8 weights only
    else:
        name = onnx.load(str(prepared)).graph.input[0].name
        fmt, activations = {"qdq-s8s8": (QuantFormat.QDQ, QuantType.QInt8), "u8s8": (QuantFormat.QOperator, QuantType.QUInt8)}[layout]
        quantize_static(str(prepared), str(out), batches(name, calibration), quant_format=fmt, per_channel=True,
                        activation_type=activations, weight_type=QuantType.QInt8)
    prepared.unlink()
    return out


def batches(name: str, x: np.ndarray, batch: int = 32):
    """Calibration inputs for onnxruntime.quantization, `batch` at a time."""
    from onnxruntime.quantization import CalibrationDataReader

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{name: x[i : i + batch]} for i in range(0, len(x), batch)])

        def get_next(self):
            return next(self.batches, None)

    return Batches()


def best_rates(graphs: dict, x: np.ndarray, rounds: int) -> dict[str, tuple[float, float]]:
    """(images per wall second, per CPU-second of this process) of each graph on `x`, rounds interleaved, best kept."""
    best = {name: (0.0, 0.0) for name in graphs}
    for graph in graphs.values():
        run(graph, x[:8])  # warm-up: allocations and kernel choice outside the timing
    for _ in range(rounds):
        for name, graph in graphs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run(graph, x, batch=len(x))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[name] = (max(best[name][0], len(x) / wall), max(best[name][1], len(x) / max(cpu, 1e-9)))
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA), help="celeba-10k: images/ and attributes.csv")
    parser.add_argument("--model", default="faces-64")
    parser.add_argument("--calibration", type=int, default=256, help="celeba-10k training faces the other static rows calibrate on")
    parser.add_argument("--no-variants", action="store_true", help="only fp32 and onnx-int8")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--C", type=float, default=0.01, help="LogisticRegression's C")
    args = parser.parse_args()
    data = Path(args.data)
    if not (data / "images").is_dir() or not (data / "attributes.csv").is_file():
        sys.exit(f"skipped: celeba-10k is not at {data} (images/ and attributes.csv); this benchmark needs it")
    os.environ.setdefault("AEKIT_HOME", tempfile.mkdtemp(prefix="aekit-bench-"))  # the runtime's graph cache
    logging.disable(logging.WARNING)  # onnxruntime.quantization warns for every layer it leaves in float

    import onnxruntime
    import torch

    import aekit
    from aekit.data import prepare
    from aekit.metrics import psnr
    from aekit.runtime import OnnxDecoder, OnnxEncoder

    torch.set_num_threads(args.threads)
    model = aekit.load(args.model).eval()
    train = prepare(f"{data / 'images'}[:9000]", model.config.image_size, progress=False)
    test = prepare(f"{data / 'images'}[9000:]", model.config.image_size, progress=False)
    header, train_y = labels_for(train.names, data / "attributes.csv")
    _, test_y = labels_for(test.names, data / "attributes.csv")
    train_x, test_x = signed(np.asarray(train.images)), signed(np.asarray(test.images))

    started = time.perf_counter()
    kinds = {}  # row -> {"encoder": path, "decoder": path}
    for label, int8 in (("fp32 (`--runtime onnx`)", False), (SHIPPED, True)):
        graphs = {"encoder": OnnxEncoder(model, int8=int8), "decoder": OnnxDecoder(model, int8=int8)}
        for graph in graphs.values():
            graph.run(graph.face_inputs(1, seed=0).numpy())  # exports (and quantises) into the cache
        kinds[label] = {part: graph.path for part, graph in graphs.items()}
    fp32 = kinds["fp32 (`--runtime onnx`)"]
    if not args.no_variants:
        folder = Path(tempfile.mkdtemp(prefix="aekit-int8-"))
        encoder = session(fp32["encoder"], args.threads)
        celeba = train_x[np.sort(np.random.default_rng(0).choice(len(train_x), args.calibration, replace=False))]
        synthetic = OnnxEncoder(model).face_inputs(256, seed=0).numpy()  # the faces onnx-int8 calibrates on
        for label, layout, faces in (("every layer, QDQ S8S8 (ORT's default), celeba calibration", "qdq-s8s8", celeba),
                                     ("every layer, U8S8, celeba calibration", "u8s8", celeba),
                                     ("every layer, U8S8, synthetic calibration", "u8s8", synthetic),
                                     ("dynamic (no calibration)", "dynamic", None)):
            latents = None if faces is None else run(encoder, faces)
            kinds[f"int8 {label}"] = {
                part: quantise_variant(fp32[part], folder / f"{part}-{len(kinds)}.onnx", x, layout)
                for part, x in (("encoder", faces), ("decoder", latents))}
    making_s = time.perf_counter() - started
    sessions = {kind: {part: session(path, args.threads) for part, path in paths.items()} for kind, paths in kinds.items()}

    speed_batch = test_x[: args.batch]
    encoder_rates = best_rates({kind: s["encoder"] for kind, s in sessions.items()}, speed_batch, args.rounds)
    speed_latents = run(sessions[next(iter(sessions))]["encoder"], speed_batch)
    decoder_rates = best_rates({kind: s["decoder"] for kind, s in sessions.items()}, speed_latents, args.rounds)

    rows, fp32_test_z = {}, None
    every = range(len(header))
    for kind, s in sessions.items():  # fp32 first
        train_z, test_z = run(s["encoder"], train_x), run(s["encoder"], test_x)
        fp32_test_z = test_z if fp32_test_z is None else fp32_test_z
        reconstruction = run(s["decoder"], test_z)
        mean_psnr = float(psnr(torch.from_numpy(reconstruction), torch.from_numpy(test_x)).mean())
        scores = probe(train_z, train_y, test_z, test_y, args.C, every)
        latent_error = float(np.sqrt(np.mean((test_z - fp32_test_z) ** 2) / np.mean(fp32_test_z ** 2)))
        rows[kind] = (mean_psnr, float(np.mean(list(scores.values()))), latent_error)
        print(f"  {kind}: PSNR {mean_psnr:.3f} dB, probe {rows[kind][1]:.4f}", file=sys.stderr, flush=True)

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    vnni = "avx512_vnni" in open("/proc/cpuinfo").read()
    print(f"\n`{args.model}` on celeba-10k: {len(train_x)} training / {len(test_x)} test faces, {len(header)} attributes; "
          f"{os.cpu_count()} CPUs ({cpu}{', AVX-512 VNNI' if vnni else ''}), {args.threads} threads; onnxruntime "
          f"{onnxruntime.__version__}, torch {torch.__version__}; batch {args.batch}, best of {args.rounds} interleaved "
          f"rounds; making the int8 graphs took {making_s:.0f} s; load average {os.getloadavg()[0]:.1f} at the end\n")
    fp32_psnr, fp32_probe, _ = rows["fp32 (`--runtime onnx`)"]
    fp32_encoder, fp32_decoder = encoder_rates["fp32 (`--runtime onnx`)"], decoder_rates["fp32 (`--runtime onnx`)"]
    print("| graphs | encoder images/s | per CPU-second | vs fp32 | decoder images/s | per CPU-second | vs fp32 | "
          "PSNR (dB) | vs fp32 | probe, mean of 40 | vs fp32 | latent RMS error | MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    verdicts = []
    for kind in sessions:
        (enc_wall, enc_cpu), (dec_wall, dec_cpu) = encoder_rates[kind], decoder_rates[kind]
        mean_psnr, probe_mean, latent_error = rows[kind]
        megabytes = sum(path.stat().st_size for path in kinds[kind].values()) / 1e6
        speed_up = enc_cpu / fp32_encoder[1]  # per CPU-second: what the other jobs on a shared machine disturb least
        print(f"| {kind} | {enc_wall:.0f} | {enc_cpu:.0f} | {speed_up:.2f}x | {dec_wall:.0f} | {dec_cpu:.0f} | "
              f"{dec_cpu / fp32_decoder[1]:.2f}x | {mean_psnr:.2f} | {mean_psnr - fp32_psnr:+.3f} | {probe_mean:.4f} | "
              f"{probe_mean - fp32_probe:+.4f} | {latent_error:.1e} | {megabytes:.1f} |")
        if kind.startswith(("int8", "`onnx-int8`")):
            keep = (abs(probe_mean - fp32_probe) <= PROBE_TOLERANCE and fp32_psnr - mean_psnr <= PSNR_TOLERANCE_DB
                    and speed_up >= MEANINGFUL_SPEED_UP)
            verdicts.append(f"- {kind}: {'meets' if keep else 'misses'} the bar (probe {probe_mean - fp32_probe:+.4f}, "
                            f"limit ±{PROBE_TOLERANCE}; PSNR {mean_psnr - fp32_psnr:+.3f} dB, limit -{PSNR_TOLERANCE_DB}; "
                            f"encoder {speed_up:.2f}x, needs {MEANINGFUL_SPEED_UP}x)")
    print("\n" + "\n".join(verdicts))


if __name__ == "__main__":
    main()
