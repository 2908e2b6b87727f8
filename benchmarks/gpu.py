"""Training throughput on one GPU: an aekit-style fast loop against the article's loop, same card, same run.

    PYTHONPATH=src python benchmarks/gpu.py                       # a CUDA machine: torch + numpy are enough
    PYTHONPATH=src python benchmarks/gpu.py --images 50000 --steps 200
    PYTHONPATH=src python benchmarks/gpu.py --device cpu --tiny   # smoke check anywhere, a few seconds
    PYTHONPATH=src python benchmarks/gpu.py --results-dir "$OUT"  # write the table somewhere else

Needs only torch and numpy: it imports ``aekit.model`` from the source tree without aekit's package
``__init__`` (which wants pluggy, safetensors...). The data are random uint8 images (200,000 by
default: the speed of a step does not depend on the pixels).

* article's loop: the data as one float32 numpy array in [-1, 1] on the host, a ``DataLoader``
  (shuffle, drop_last, batch 64, no workers) feeding the GPU batch by batch, the model in fp32 and
  contiguous memory, Adam at 2e-4, LinearLR, MSE, ``zero_grad`` after each step.
* aekit fast loop: the whole data set on the GPU as uint8 (200,000 x 12 KB = 2.4 GB), shuffled with
  ``randperm`` and normalised to [-1, 1] on the GPU, bf16 autocast, channels_last, fused Adam,
  LinearLR, the loss read back only every 50 steps; then the same with ``torch.compile`` (inductor),
  and with ``mode="reduce-overhead"`` (CUDA graphs), and that at batch 256.

The article's loop runs with PyTorch's defaults; the fast loops turn on ``cudnn.benchmark``.
Each loop runs warm-up steps (compilation included there, and reported) then timed steps between two
``torch.cuda.synchronize()``. The table is printed with the card's name and written to
``benchmarks/results/<date>-<card>.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import math
import os
import platform
import re
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def import_model_module():
    """``aekit.model`` from the source tree, without running aekit/__init__.py (no pluggy, safetensors...)."""
    if "aekit" not in sys.modules:
        package = types.ModuleType("aekit")
        package.__path__ = [str(ROOT / "src" / "aekit")]
        package.__version__ = "source"
        sys.modules["aekit"] = package
    return importlib.import_module("aekit.model")


def make_model(tiny: bool):
    model_module = import_model_module()
    if tiny:
        config = model_module.AutoencoderConfig(widths=(8, 16), convs_per_half=1, latent_dim=16)
    else:
        config = model_module.AutoencoderConfig()  # the article's model, the default preset
    torch.manual_seed(0)
    return model_module.Autoencoder(config)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def article_loop(images_u8: np.ndarray, device, batch_size, warmup, steps, tiny) -> dict:
    """The article's loop: float32 numpy array -> DataLoader -> GPU, fp32, Adam, LinearLR."""
    model = make_model(tiny).to(device)
    data = (images_u8.astype(np.float32) - 127.5) / 127.5
    loader = torch.utils.data.DataLoader(dataset=data, batch_size=batch_size, shuffle=True, drop_last=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1, end_factor=0, total_iters=warmup + steps)
    criterion = torch.nn.MSELoss()
    model.train()
    batches = iter(loader)
    loss = None
    t0 = None
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            t0 = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        batch = batch.to(device)
        pred = model.decoder(model.encoder(batch))
        loss = criterion(pred, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    sync(device)
    seconds = time.perf_counter() - t0
    return {"images_per_s": steps * batch_size / seconds, "loss": float(loss.detach()), "setup_s": None}


def fast_loop(data_u8: torch.Tensor, device, batch_size, warmup, steps, tiny, compile_mode=None, bf16=True) -> dict:
    """aekit-style: uint8 data on the device, GPU shuffle + normalise, bf16 autocast, channels_last, fused Adam."""
    model = make_model(tiny).to(device).to(memory_format=torch.channels_last)
    model.train()
    cuda = device.type == "cuda"
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4, **({"fused": True} if cuda else {"foreach": True}))
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1, end_factor=0, total_iters=warmup + steps)
    forward = model
    if compile_mode is not None:
        forward = torch.compile(model, mode=compile_mode)
    n = len(data_u8)
    per_epoch = n // batch_size
    generator = torch.Generator(device=device).manual_seed(0)
    order = torch.randperm(n, device=device, generator=generator)
    losses = torch.zeros((), device=device)
    loss_value = float("nan")
    t_setup = time.perf_counter()
    t0 = None
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            t0 = time.perf_counter()
        b = step % per_epoch
        if b == 0 and step:
            order = torch.randperm(n, device=device, generator=generator)
        x = data_u8[order[b * batch_size : (b + 1) * batch_size]]
        x = x.float().sub_(127.5).div_(127.5).contiguous(memory_format=torch.channels_last)
        if compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            pred = forward(x)
        loss = torch.nn.functional.mse_loss(pred.float(), x)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        losses += loss.detach()
        if (step + 1) % 50 == 0:  # read the loss back now and then, not every step (no sync per step)
            loss_value = float(losses) / 50
            losses.zero_()
    sync(device)
    seconds = time.perf_counter() - t0
    if math.isnan(loss_value):
        loss_value = float(loss)
    return {"images_per_s": steps * batch_size / seconds, "loss": loss_value, "setup_s": t0 - t_setup}


def card_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu.")
    parser.add_argument("--images", type=int, default=200_000, help="Random uint8 64x64 images in the data set.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--big-batch", type=int, default=256, help="Batch of the last fast row (0: leave it out).")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--steps", type=int, default=300, help="Timed steps of each loop.")
    parser.add_argument("--no-compile", action="store_true", help="Leave out the torch.compile rows.")
    parser.add_argument("--fp32", action="store_true", help="No bf16 autocast in the fast loop (the default on a CPU).")
    parser.add_argument("--tiny", action="store_true",
                        help="Smoke check: a tiny model, 256 images, batches of 32 and 64, 1 + 2 steps, no compile.")
    parser.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    if args.tiny:
        args.images, args.warmup, args.steps, args.no_compile = min(args.images, 256), 1, 2, True
        args.batch_size, args.big_batch = min(args.batch_size, 32), min(args.big_batch, 64) if args.big_batch else 0
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("no CUDA GPU here; run with --device cpu --tiny for a smoke check")
    bf16 = device.type == "cuda" and not args.fp32  # CPUs without bf16 units emulate it, slowly
    name = card_name(device)
    n = args.images
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 3, 64, 64), dtype=np.uint8)
    try:
        on_device = torch.from_numpy(images).to(device)
    except RuntimeError as exc:  # out of memory: fewer images
        sys.exit(f"could not put {n} images on {name}: {exc}; try --images {n // 2}")

    rows = []

    def add(label, result, batch):
        rows.append((label, batch, result))
        setup = f", set-up {result['setup_s']:.1f} s" if result["setup_s"] is not None else ""
        print(f"  {label} (batch {batch}): {result['images_per_s']:,.0f} images/s, loss {result['loss']:.4f}{setup}", flush=True)

    print(f"{name}; torch {torch.__version__}; {n:,} random uint8 images; {args.steps} timed steps after {args.warmup} warm-up", flush=True)
    add("article's loop (fp32, DataLoader over float32 numpy, Adam, LinearLR)",
        article_loop(images, device, args.batch_size, args.warmup, args.steps, args.tiny), args.batch_size)
    del images
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the fast loops only; the article's loop ran with PyTorch's defaults
    add(f"aekit fast loop (uint8 on device, {'bf16' if bf16 else 'fp32'}, channels_last, {'fused' if device.type == 'cuda' else 'foreach'} Adam)",
        fast_loop(on_device, device, args.batch_size, args.warmup, args.steps, args.tiny, bf16=bf16), args.batch_size)
    if not args.no_compile:
        add("aekit fast loop + torch.compile", fast_loop(on_device, device, args.batch_size, args.warmup, args.steps,
                                                          args.tiny, "default", bf16), args.batch_size)
        if device.type == "cuda":
            add("aekit fast loop + torch.compile + CUDA graphs",
                fast_loop(on_device, device, args.batch_size, args.warmup, args.steps, args.tiny, "reduce-overhead", bf16), args.batch_size)
    if args.big_batch:
        mode = None if args.no_compile else ("reduce-overhead" if device.type == "cuda" else "default")
        label = "aekit fast loop" + ("" if mode is None else " + torch.compile" + (" + CUDA graphs" if mode == "reduce-overhead" else ""))
        add(label, fast_loop(on_device, device, args.big_batch, args.warmup, args.steps, args.tiny, mode, bf16), args.big_batch)

    reference = rows[0][2]["images_per_s"]
    command = "PYTHONPATH=src python benchmarks/gpu.py " + " ".join(sys.argv[1:])
    date = dt.date.today().isoformat()
    lines = [f"# GPU training throughput, {date}, {name}", "",
             f"`{command}`", "",
             f"torch {torch.__version__}, CUDA {torch.version.cuda}, {'tiny smoke model' if args.tiny else 'the article model (default preset)'}, "
             f"{n:,} random uint8 64x64 images, {args.steps} timed steps after {args.warmup} warm-up steps.", "",
             "| loop | batch | images/s | vs article's loop | set-up incl. compile (s) | loss |",
             "|---|---|---|---|---|---|"]
    for label, batch, result in rows:
        setup = "" if result["setup_s"] is None else f"{result['setup_s']:.1f}"
        lines.append(f"| {label} | {batch} | {result['images_per_s']:,.0f} | {result['images_per_s'] / reference:.2f}x | {setup} | {result['loss']:.4f} |")
    table = "\n".join(lines) + "\n"
    print()
    print(table)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] + ("-tiny" if args.tiny else "")
    out = Path(args.results_dir) / f"{date}-{slug}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table, encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
