"""Where one training step of the default model spends its time on this CPU: torch.profiler by operator.

    python benchmarks/train_profile.py                          # article model, batch 64, 2 threads
    python benchmarks/train_profile.py --steps 5 --save benchmarks/results/DATE-train-profile.md

The step is `aekit train`'s own (``Trainer._step`` on the model and optimizer the trainer builds: uint8
batch -> [-1, 1], forward, MSE, backward, Adam, zero_grad), after ``--warmup`` unprofiled steps. The
operator table splits the step into forward, backward and optimizer (``record_function`` ranges) and
gives each operator's self time per step. The convolution table computes every convolution's
GFLOP/s from its shapes (``record_shapes=True``; FLOPs = 2 x multiply-adds; a backward pass is the
input gradient plus the weight gradient, twice the forward's work, once where the input needs no
gradient), beside the GFLOP/s the same convolutions reach in an inference-only forward pass
(eval mode, ``torch.inference_mode``) profiled in the same run.

The peak is measured, not looked up: a small C program (built with the system's C compiler) runs
12 independent fused multiply-add chains per thread on registers, with 256-bit (AVX2) and, where
the CPU has it, 512-bit (AVX-512) vectors, one thread per torch thread; the best of three runs is
the peak. Without a compiler the table gives the nominal figure (cores x the clock /proc/cpuinfo
reports x FLOP per cycle for two FMA pipes), which ignores boost clocks.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile, record_function

FMA_SOURCE = r"""
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef W512
typedef __m512 V;
#define FMA _mm512_fmadd_ps
#define SET _mm512_set1_ps
#define LANES 16
#else
typedef __m256 V;
#define FMA _mm256_fmadd_ps
#define SET _mm256_set1_ps
#define LANES 8
#endif
static long iters;
volatile float sink[256];
static void *work(void *arg) {
  V a0 = SET(1), a1 = SET(1), a2 = SET(1), a3 = SET(1), a4 = SET(1), a5 = SET(1);
  V a6 = SET(1), a7 = SET(1), a8 = SET(1), a9 = SET(1), a10 = SET(1), a11 = SET(1);
  V m = SET(0.9999999f), c = SET(1e-7f);
  for (long i = 0; i < iters; i++) {
    a0 = FMA(a0, m, c); a1 = FMA(a1, m, c); a2 = FMA(a2, m, c); a3 = FMA(a3, m, c);
    a4 = FMA(a4, m, c); a5 = FMA(a5, m, c); a6 = FMA(a6, m, c); a7 = FMA(a7, m, c);
    a8 = FMA(a8, m, c); a9 = FMA(a9, m, c); a10 = FMA(a10, m, c); a11 = FMA(a11, m, c);
  }
  V s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
  float o[LANES]; memcpy(o, &s, sizeof o); sink[(long)arg] = o[0];
  return 0;
}
int main(int argc, char **argv) {
  int n = atoi(argv[1]); iters = atol(argv[2]); pthread_t t[256]; struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i++) pthread_create(&t[i], 0, work, (void *)i);
  for (int i = 0; i < n; i++) pthread_join(t[i], 0);
  clock_gettime(CLOCK_MONOTONIC, &b);
  double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9;
  printf("%.3f\n", n * (double)iters * 12 * LANES * 2 / s / 1e9);
  return 0;
}
"""


def cpu_info() -> tuple[str, set[str], float | None]:
    """(model name, flags, MHz) from /proc/cpuinfo."""
    name, flags, mhz = platform.processor() or platform.machine(), set(), None
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    name = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                elif key == "cpu MHz" and mhz is None:
                    mhz = float(value)
    except OSError:
        pass
    return name, flags, mhz


def measured_peaks(threads: int, flags: set[str]) -> dict[str, float]:
    """Measured fp32 FMA GFLOP/s for `threads` threads: {"AVX2 (256-bit)": ..., "AVX-512": ...}."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if not compiler:
        return {}
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "fma.c")
        with open(source, "w") as fh:
            fh.write(FMA_SOURCE)
        widths = [("AVX2 (256-bit)", ["-mavx2", "-mfma"])]
        if "avx512f" in flags:
            widths.append(("AVX-512", ["-mavx512f", "-mfma", "-DW512"]))
        for label, extra in widths:
            binary = os.path.join(tmp, label.split()[0])
            try:
                subprocess.run([compiler, "-O2", *extra, source, "-o", binary, "-lpthread"], check=True,
                               capture_output=True)
                runs = [float(subprocess.run([binary, str(threads), "100000000"], check=True, capture_output=True,
                                             text=True).stdout) for _ in range(3)]
            except (subprocess.CalledProcessError, ValueError, OSError):
                continue
            peaks[label] = max(runs)
    return peaks


class ConvShapes:
    """FLOPs of the model's convolutions, keyed by (input shape, weight shape) as the profiler records them."""

    def __init__(self, model, x):
        self.forward_flops = collections.defaultdict(float)  # per key, summed over the layers with that key
        self.backward_flops = collections.defaultdict(float)
        self.layers = collections.Counter()
        self.label = {}
        hooks = [m.register_forward_hook(self._hook) for m in model.modules()
                 if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
        try:
            model(x)
        finally:
            for h in hooks:
                h.remove()

    def _hook(self, module, inputs, output):
        x, w = inputs[0], module.weight
        transposed = isinstance(module, torch.nn.ConvTranspose2d)
        spatial = x.shape[2] * x.shape[3] if transposed else output.shape[2] * output.shape[3]
        flops = 2.0 * x.shape[0] * spatial * w.shape[0] * w.shape[1] * w.shape[2] * w.shape[3] / module.groups
        key = (tuple(x.shape), tuple(w.shape))
        self.forward_flops[key] += flops
        self.backward_flops[key] += flops * (2 if x.requires_grad else 1)
        self.layers[key] += 1
        kind = "ConvT" if transposed else "Conv"
        stride = f" s{module.stride[0]}" if module.stride != (1, 1) else ""
        self.label[key] = (f"{kind} {x.shape[1]}→{output.shape[1]} {w.shape[2]}x{w.shape[3]}{stride}, "
                           f"{x.shape[2]}² → {output.shape[2]}²")


def conv_times(events, steps: int) -> tuple[dict, dict]:
    """Per (input, weight) key: forward (aten::convolution) and backward (aten::convolution_backward) total ms per step."""
    forward, backward = collections.defaultdict(float), collections.defaultdict(float)
    for e in events:
        shapes = e.input_shapes or []
        if e.key == "aten::convolution" and len(shapes) >= 2:
            forward[(tuple(shapes[0]), tuple(shapes[1]))] += e.cpu_time_total / 1e3 / steps
        elif e.key == "aten::convolution_backward" and len(shapes) >= 3:
            backward[(tuple(shapes[1]), tuple(shapes[2]))] += e.cpu_time_total / 1e3 / steps
    return forward, backward


PHASES = ("forward", "backward", "optimizer")


def by_phase(prof, steps: int) -> tuple[dict, float]:
    """{(phase, operator): [calls, self ms]} per step, and the step's ms (the three ranges' totals)."""
    table = collections.defaultdict(lambda: [0.0, 0.0])
    step_ms = 0.0
    for e in prof.events():
        if e.name in PHASES:
            step_ms += e.cpu_time_total / 1e3 / steps
            continue
        parent, phase = e.cpu_parent, None
        while parent is not None:
            if parent.name in PHASES:
                phase = parent.name
                break
            parent = parent.cpu_parent
        if phase is None:
            continue
        row = table[(phase, e.name)]
        row[0] += 1 / steps
        row[1] += e.self_cpu_time_total / 1e3 / steps
    return table, step_ms


def main():
    from aekit.run_config import TrainConfig
    from aekit.train import Trainer

    default_arch = TrainConfig().arch
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default=default_arch, help=f"Model preset (default: `aekit train`'s, {default_arch}).")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the OpenMP pool).")
    parser.add_argument("--warmup", type=int, default=3, help="Unprofiled steps first.")
    parser.add_argument("--steps", type=int, default=3, help="Profiled training steps.")
    parser.add_argument("--rows", type=int, default=24, help="Operator rows to print (the rest summed).")
    parser.add_argument("--save", default=None, help="Also write the Markdown to this file.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    lines = []

    def emit(text=""):
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(data=f"synthetic:{args.batch_size}", arch=args.arch, batch_size=args.batch_size,
                             sample_every=0, device="cpu", precision="fp32")
        trainer = Trainer(config, tmp, progress=False, log=lambda m: None, run_hooks=False)
        model = trainer._build_model()
        model = trainer.training_model(model)
        optimizer = trainer.make_optimizer(model)
        rng = np.random.default_rng(0)
        batches = [torch.from_numpy(rng.integers(0, 256, size=(args.batch_size, 3, model.config.image_size,
                                                               model.config.image_size), dtype=np.uint8))
                   for _ in range(2)]
        shapes = ConvShapes(model, trainer.model_input(batches[0]))
        model.zero_grad(set_to_none=True)

        def step(i, profiled=False):
            if not profiled:
                return trainer._step(model, optimizer, batches[i % 2])
            # the same work as Trainer._step, split into the three ranges
            with record_function("forward"):
                x = trainer.model_input(batches[i % 2])
                loss = torch.nn.functional.mse_loss(model(x).float(), x)
                loss.item()
            with record_function("backward"):
                loss.backward()
            with record_function("optimizer"):
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

        # the article's loop on the same batches (contiguous model, Adam, MSE), timed step by step in turn
        # with aekit's, outside the profiler: the 2x target is half its step
        import aekit

        torch.manual_seed(0)
        article = aekit.create_model(args.arch).train()
        article_optimizer = torch.optim.Adam(article.parameters(), lr=2e-4)

        def article_step(i):
            x = batches[i % 2].float().sub(127.5).div(127.5)
            loss = torch.nn.functional.mse_loss(article.decoder(article.encoder(x)), x)
            loss.backward()
            article_optimizer.step()
            article_optimizer.zero_grad()

        for i in range(args.warmup):
            step(i)
            article_step(i)
        times = {"aekit": [0.0, 0.0], "article": [0.0, 0.0]}
        for i in range(args.steps):
            for name, fn in (("aekit", step), ("article", article_step))[:: 1 if i % 2 == 0 else -1]:
                w0, c0 = time.perf_counter(), time.process_time()
                fn(i)
                times[name][0] += (time.perf_counter() - w0) / args.steps
                times[name][1] += (time.process_time() - c0) / args.steps
        plain_wall, plain_cpu = times["aekit"]
        article_wall, article_cpu = times["article"]
        article = article_optimizer = None  # let them go before the inference timing
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for i in range(args.steps):
                step(i, profiled=True)
        table, step_ms = by_phase(prof, args.steps)
        train_fwd, train_bwd = conv_times(prof.key_averages(group_by_input_shape=True), args.steps)

        # inference only: the same model in eval mode, the same batch, forward under inference_mode
        model.eval()
        with torch.inference_mode():
            x = trainer.model_input(batches[0])
            for _ in range(args.warmup):
                model(x)
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as inference:
                for _ in range(args.steps):
                    model(x)
        infer_fwd, _ = conv_times(inference.key_averages(group_by_input_shape=True), args.steps)
        model.train()

    name, flags, mhz = cpu_info()
    peaks = measured_peaks(args.threads, flags)
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    lanes = 16 if isa == "AVX-512" else 8
    nominal = args.threads * (mhz or 0) / 1e3 * lanes * 2 * 2  # 2 FMA pipes x lanes x 2 FLOP
    peak = peaks.get("AVX-512" if isa == "AVX-512" else "AVX2 (256-bit)") or nominal
    command = "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])

    emit(f"# Training step profile: {args.arch} model, batch {args.batch_size}, {args.threads} torch thread(s)")
    emit()
    emit(f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; command: `{command}`")
    emit(f"- machine: {name}, {os.cpu_count()} CPU(s), {isa} ({', '.join(sorted(f for f in flags if f.startswith(('avx512f', 'avx512_bf16', 'amx', 'avx2', 'fma'))))}), "
         f"/proc/cpuinfo clock {mhz or 0:.0f} MHz; torch {torch.__version__}, oneDNN {torch.backends.mkldnn.is_available() and 'on'}, "
         f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}; load average {os.getloadavg()[0]:.1f} at the end")
    emit(f"- `aekit train`'s step outside the profiler: {plain_wall * 1e3:.0f} ms wall, {plain_cpu * 1e3:.0f} ms CPU "
         f"({args.batch_size / plain_wall:.1f} images/s, {args.batch_size / plain_cpu:.1f} images per CPU-second); "
         f"the article's step, timed in turn with it: {article_wall * 1e3:.0f} ms wall, {article_cpu * 1e3:.0f} ms CPU "
         f"({args.batch_size / article_wall:.1f} images/s, {args.batch_size / article_cpu:.1f} per CPU-second): "
         f"{article_wall / plain_wall:.2f}x wall, {article_cpu / plain_cpu:.2f}x CPU. Inside the profiler: "
         f"{step_ms:.0f} ms (forward + backward + optimizer ranges); {args.warmup} warm-up, {args.steps} timed and "
         f"{args.steps} profiled steps")
    peak_text = "; ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()) or "no C compiler: not measured"
    emit(f"- fp32 peak, {args.threads} thread(s): measured FMA throughput {peak_text}; nominal {isa} "
         f"{args.threads} x {mhz or 0:.0f} MHz x {lanes} lanes x 2 FMA pipes x 2 = {nominal:.0f} GFLOP/s. "
         f"The % of peak below is against {peak:.0f} GFLOP/s.")
    emit()

    emit("## Operators (self time per step)")
    emit()
    emit("| phase | operator | calls/step | self ms/step | % of step |")
    emit("|---|---|---|---|---|")
    rows = sorted(table.items(), key=lambda kv: -kv[1][1])
    shown = rows[: args.rows]
    for (phase, op), (calls, ms) in shown:
        emit(f"| {phase} | `{op}` | {calls:.0f} | {ms:.1f} | {100 * ms / step_ms:.1f} |")
    rest = sum(ms for _, (_, ms) in rows[args.rows:])
    emit(f"| all | {len(rows) - len(shown)} other operators | | {rest:.1f} | {100 * rest / step_ms:.1f} |")
    by = collections.defaultdict(float)
    for (phase, op), (_, ms) in rows:
        by[phase] += ms
    emit()
    emit("Phases: " + ", ".join(f"{p} {by[p]:.0f} ms ({100 * by[p] / step_ms:.0f}%)" for p in PHASES) + ".")
    emit()

    emit("## Convolutions: achieved GFLOP/s, training against inference (same run)")
    emit()
    emit("| convolution (input → output size) | layers | fwd ms/step | fwd GFLOP/s | inference GFLOP/s | "
         "bwd ms/step | bwd GFLOP/s | bwd % of peak |")
    emit("|---|---|---|---|---|---|---|---|")
    totals = collections.Counter()
    keys = sorted(shapes.forward_flops, key=lambda k: -(train_fwd.get(k, 0) + train_bwd.get(k, 0)))
    for key in keys:
        f_ms, b_ms, i_ms = train_fwd.get(key, 0.0), train_bwd.get(key, 0.0), infer_fwd.get(key, 0.0)
        f_fl, b_fl = shapes.forward_flops[key], shapes.backward_flops[key]
        totals.update({"f_ms": f_ms, "b_ms": b_ms, "i_ms": i_ms, "f_fl": f_fl, "b_fl": b_fl})

        def rate(flops, ms):
            return f"{flops / ms / 1e6:.0f}" if ms > 0 else "–"

        emit(f"| {shapes.label[key]} | {shapes.layers[key]} | {f_ms:.1f} | {rate(f_fl, f_ms)} | {rate(f_fl, i_ms)} | "
             f"{b_ms:.1f} | {rate(b_fl, b_ms)} | {100 * b_fl / b_ms / 1e6 / peak:.0f} |" if b_ms else
             f"| {shapes.label[key]} | {shapes.layers[key]} | {f_ms:.1f} | {rate(f_fl, f_ms)} | {rate(f_fl, i_ms)} | – | – | – |")
    f_rate = totals["f_fl"] / max(totals["f_ms"], 1e-9) / 1e6
    i_rate = totals["f_fl"] / max(totals["i_ms"], 1e-9) / 1e6
    b_rate = totals["b_fl"] / max(totals["b_ms"], 1e-9) / 1e6
    emit(f"| **all convolutions** | {sum(shapes.layers.values())} | {totals['f_ms']:.0f} | {f_rate:.0f} | {i_rate:.0f} | "
         f"{totals['b_ms']:.0f} | {b_rate:.0f} | {100 * b_rate / peak:.0f} |")
    emit()
    conv_ms = totals["f_ms"] + totals["b_ms"]
    emit(f"Convolutions: {totals['f_fl'] / 1e9:.1f} GFLOP forward + {totals['b_fl'] / 1e9:.1f} GFLOP backward per step, "
         f"{conv_ms:.0f} ms of the {step_ms:.0f} ms step ({100 * conv_ms / step_ms:.0f}%); forward at "
         f"{100 * f_rate / peak:.0f}% of peak in training and {100 * i_rate / peak:.0f}% in inference, backward at "
         f"{100 * b_rate / peak:.0f}%. Everything else (BatchNorm, LeakyReLU, the optimizer, copies): "
         f"{step_ms - conv_ms:.0f} ms ({100 * (step_ms - conv_ms) / step_ms:.0f}%). The whole step at its "
         f"{(totals['f_fl'] + totals['b_fl']) / 1e9:.0f} GFLOP runs at {(totals['f_fl'] + totals['b_fl']) / step_ms / 1e6:.0f} GFLOP/s "
         f"({100 * (totals['f_fl'] + totals['b_fl']) / step_ms / 1e6 / peak:.0f}% of peak).")
    target_ms = article_wall * 1e3 / 2
    floor_ms = (totals["f_fl"] + totals["b_fl"]) / max(i_rate, 1e-9) / 1e6
    emit()
    emit(f"2x the article's loop means a step of at most {target_ms:.0f} ms. The convolutions alone, forward and "
         f"backward, at the rate the same convolutions reach in inference ({i_rate:.0f} GFLOP/s, "
         f"{100 * i_rate / peak:.0f}% of peak) would take {floor_ms:.0f} ms; at the measured training rates they take "
         f"{conv_ms:.0f} ms, and the rest of the step {step_ms - conv_ms:.0f} ms.")
    if args.save:
        with open(args.save, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
