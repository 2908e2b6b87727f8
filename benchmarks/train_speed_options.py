"""Which speed options pay for a training step on this CPU: the default model, one table, same run.

    OMP_NUM_THREADS=1 python benchmarks/train_speed_options.py              # the article model, batch 64
    python benchmarks/train_speed_options.py --steps 4 --rounds 2 --no-compile
    python benchmarks/train_speed_options.py --arch small --steps 10         # quicker look

Every option runs the trainer's step (uint8 batch -> [-1, 1] float, forward, MSE, backward, Adam at
2e-4, ``zero_grad(set_to_none=True)``, LinearLR, ``loss.item()``) on random uint8 images; only the
option changes. Options run round-robin (one warm-up step each, then ``--steps`` timed steps per
round) so a shared machine slows all alike. Each is timed by the wall clock and by this process's
CPU time; on a machine other jobs share, images per CPU-second is the steadier figure.

Options: fp32 contiguous (the reference: the article's layout), channels_last (what `aekit train` uses),
bf16 autocast (contiguous and channels_last), torch.compile (inductor; needs a C++ compiler),
foreach and fused Adam, and batch 128. A second table times ``optimizer.step()`` alone for the three
Adam implementations, since its share of a step is small.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import time

import numpy as np
import torch

import aekit


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return "?"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni")
    return ",".join(f for f in wanted if f" {f}" in flags) or "none of avx2/avx512"


class Option:
    def __init__(self, name, batch=64, channels_last=False, bf16=False, compile=False, adam=None):
        self.name, self.batch, self.channels_last, self.bf16, self.compile, self.adam = name, batch, channels_last, bf16, compile, adam
        self.wall, self.cpu, self.images, self.setup_s, self.error = [], [], 0, None, None

    def build(self, arch, seed=0):
        torch.manual_seed(seed)
        model = aekit.create_model(arch)
        model.train()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        kwargs = {"foreach": True} if self.adam == "foreach" else {"fused": True} if self.adam == "fused" else {"foreach": False}
        self.optimizer = torch.optim.Adam(model.parameters(), lr=2e-4, **kwargs)
        self.scheduler = torch.optim.lr_scheduler.LinearLR(self.optimizer, start_factor=1.0, end_factor=0.0, total_iters=10_000)
        self.model = model
        self.forward = torch.compile(model) if self.compile else model

    def step(self, batch_u8):
        x = batch_u8.float().sub_(127.5).div_(127.5)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            pred = self.forward(x)
        loss = torch.nn.functional.mse_loss(pred.float(), x)
        value = loss.item()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return value


def adam_step_times(arch, repeats=10) -> list[tuple[str, float]]:
    """Seconds per optimizer.step() alone, with random gradients, for each Adam implementation."""
    torch.manual_seed(0)
    params = [p.detach().clone().requires_grad_(True) for p in aekit.create_model(arch).parameters()]
    rows = []
    for name, kwargs in (("for-loop Adam (foreach=False)", {"foreach": False}), ("foreach Adam", {"foreach": True}),
                         ("fused Adam", {"fused": True})):
        try:
            optimizer = torch.optim.Adam(params, lr=2e-4, **kwargs)
        except (RuntimeError, ValueError) as exc:
            rows.append((name, float("nan"), str(exc).splitlines()[0]))
            continue
        for p in params:
            p.grad = torch.randn_like(p)
        optimizer.step()
        c0 = time.process_time()
        for _ in range(repeats):
            optimizer.step()
        rows.append((name, (time.process_time() - c0) / repeats, ""))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="article")
    parser.add_argument("--steps", type=int, default=2, help="Timed steps per option per round.")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--only", default=None, help="Comma-separated option numbers to run (1-based; 1 is the reference).")
    args = parser.parse_args()

    compiler = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++") or shutil.which("clang++")
    options = [Option("fp32, contiguous (reference: the article's layout)"),
               Option("fp32, channels_last", channels_last=True),
               Option("bf16 autocast, contiguous", bf16=True),
               Option("bf16 autocast, channels_last", bf16=True, channels_last=True),
               Option("fp32, channels_last, foreach Adam", channels_last=True, adam="foreach"),
               Option("fp32, channels_last, fused Adam", channels_last=True, adam="fused"),
               Option("fp32, channels_last, batch 128", batch=128, channels_last=True)]
    if not args.no_compile:
        options.append(Option("fp32, channels_last, torch.compile (inductor)", channels_last=True, compile=True))
    if args.only:
        keep = {int(i) for i in args.only.split(",")}
        options = [o for i, o in enumerate(options, 1) if i in keep or i == 1]

    rng = np.random.default_rng(0)
    data = torch.from_numpy(rng.integers(0, 256, size=(256, 3, 64, 64), dtype=np.uint8))
    for option in options:
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            if option.compile and not compiler:
                raise RuntimeError("no C++ compiler found (g++/c++/clang++): inductor cannot build CPU kernels")
            option.build(args.arch)
            option.step(data[: option.batch])  # warm-up (compilation happens here)
        except Exception as exc:  # noqa: BLE001 - report the option as failed, keep the others
            option.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:160]
        option.setup_s = (time.perf_counter() - w0, time.process_time() - c0)
        print(f"  set up {option.name}: {option.setup_s[0]:.1f} s wall{' (' + option.error + ')' if option.error else ''}", flush=True)
    for r in range(args.rounds):
        for option in options:
            if option.error:
                continue
            for s in range(args.steps):
                start = (r * args.steps + s) * option.batch % (len(data) - option.batch + 1)
                batch = data[start : start + option.batch]
                w0, c0 = time.perf_counter(), time.process_time()
                option.step(batch)
                option.wall.append(time.perf_counter() - w0)
                option.cpu.append(time.process_time() - c0)
            print(f"  round {r + 1}: {option.name}: {option.batch / statistics.median(option.wall):.1f} images/s wall, "
                  f"{option.batch / statistics.median(option.cpu):.1f} per CPU-second", flush=True)

    ref = options[0]
    ref_wall, ref_cpu = ref.batch / statistics.median(ref.wall), ref.batch / statistics.median(ref.cpu)
    print(f"\n{args.arch} model, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), {os.cpu_count()} CPU(s) "
          f"({platform.processor() or platform.machine()}; flags: {cpu_flags()}), C++ compiler: {compiler or 'none'}; "
          f"median of {args.rounds} round(s) x {args.steps} timed step(s) after 1 warm-up; load average {os.getloadavg()[0]:.1f}\n")
    print("| option | images/s (wall) | vs reference | images per CPU-second | vs reference | set-up s (wall) | pays? |")
    print("|---|---|---|---|---|---|---|")
    for option in options:
        if option.error:
            print(f"| {option.name} | – | – | – | – | {option.setup_s[0]:.1f} | failed: {option.error} |")
            continue
        wall = option.batch / statistics.median(option.wall)
        cpu = option.batch / statistics.median(option.cpu)
        verdict = "reference" if option is ref else ("yes" if cpu / ref_cpu >= 1.10 else "no" if cpu / ref_cpu <= 0.95 else "within noise")
        print(f"| {option.name} | {wall:.1f} | {wall / ref_wall:.2f}x | {cpu:.1f} | {cpu / ref_cpu:.2f}x | {option.setup_s[0]:.1f} | {verdict} |")
    print("\n| optimizer.step() alone | ms per step (CPU time) | note |")
    print("|---|---|---|")
    for name, seconds, note in adam_step_times(args.arch):
        print(f"| {name} | {seconds * 1e3:.1f} | {note} |")


if __name__ == "__main__":
    main()
