"""Training throughput (images/s) of aekit's trainer against the article's loop, same model, same run.

    python benchmarks/train_throughput.py                 # article model, batch 64, 12 batches, 2 rounds
    python benchmarks/train_throughput.py --arch small --batches 30 --rounds 3

The reference reproduces the article's loop: a DataLoader over a float32 (N, 3, 64, 64) array in
[-1, 1], shuffle, drop_last, Adam at 2e-4, LinearLR, MSE, fp32 (with both halves in the optimizer, as
aekit does, so the work per step is equal). aekit's side is ``Trainer.run`` for one epoch on the same
images (``aekit train``'s defaults for this machine: layout, precision, threads). Each side is timed
from its first batch to the end of its epoch (aekit: its metrics row), by the wall clock and by this
process's CPU time (all threads); no warm-up, like a user's first epoch. The sides alternate
(article, aekit, aekit, article, ...) over ``--rounds``, and each rate is the total images over the
total time of its rounds.
"""

import argparse
import os
import tempfile
import time

import numpy as np
import torch

import aekit
from aekit.train import Trainer, TrainConfig


def article_loop(arch: str, images: np.ndarray, batch_size: int) -> tuple[int, float, float]:
    """(images, wall s, CPU s) of the article's training loop over `images` (uint8 NCHW), one epoch."""
    torch.manual_seed(0)
    model = aekit.create_model(arch)
    data = (images.astype(np.float32) - 127.5) / 127.5
    loader = torch.utils.data.DataLoader(dataset=data, batch_size=batch_size, shuffle=True, drop_last=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1, end_factor=0, total_iters=len(loader))
    criterion = torch.nn.MSELoss()
    model.train()
    w0, c0, seen = time.perf_counter(), time.process_time(), 0
    for batch in loader:
        pred = model.decoder(model.encoder(batch))
        loss = criterion(pred, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        seen += len(batch)
    return seen, time.perf_counter() - w0, time.process_time() - c0


def aekit_trainer(arch: str, n_images: int, batch_size: int, precision: str) -> tuple[int, float, float, str]:
    """(images, wall s, CPU s, precision used) of `aekit train`'s loop, first step to the epoch's metrics row."""
    marks = {}

    class Timed(Trainer):
        def _step(self, *args, **kwargs):
            marks.setdefault("start", (time.perf_counter(), time.process_time()))
            marks["steps"] = marks.get("steps", 0) + 1
            return super()._step(*args, **kwargs)

        def _append_metrics(self, row):
            marks.setdefault("end", (time.perf_counter(), time.process_time()))
            super()._append_metrics(row)

    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(data=f"synthetic:{n_images}", arch=arch, epochs=1, batch_size=batch_size,
                             sample_every=0, precision=precision, device="cpu")
        trainer = Timed(config, out, progress=False, log=lambda m: None, run_hooks=False)
        trainer.run()
    (w0, c0), (w1, c1) = marks["start"], marks["end"]
    return marks["steps"] * batch_size, w1 - w0, c1 - c0, trainer.precision


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="article")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="aekit's --precision.")
    args = parser.parse_args()
    n = args.batch_size * args.batches
    from aekit.data import prepare

    images = np.asarray(prepare(f"synthetic:{n}", 64, progress=False).images)  # cached for the trainer too
    totals = {"article": [0, 0.0, 0.0], "aekit": [0, 0.0, 0.0]}
    used = "?"
    for r in range(args.rounds):
        for side in (("article", "aekit") if r % 2 == 0 else ("aekit", "article")):
            if side == "article":
                seen, wall, cpu = article_loop(args.arch, images, args.batch_size)
            else:
                seen, wall, cpu, used = aekit_trainer(args.arch, n, args.batch_size, args.precision)
            for i, v in enumerate((seen, wall, cpu)):
                totals[side][i] += v
            print(f"  round {r + 1}, {side}: {seen / wall:.1f} images/s, {seen / cpu:.1f} per CPU-second", flush=True)
    print(f"\n{args.arch}, batch {args.batch_size}, {args.batches} batches per epoch, {args.rounds} alternated rounds, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| loop | images/s (wall) | vs reference | images per CPU-second | vs reference |")
    print("|---|---|---|---|---|")
    ref_wall, ref_cpu = totals["article"][0] / totals["article"][1], totals["article"][0] / totals["article"][2]
    for name, key in (("article's loop (fp32)", "article"), (f"aekit train ({used})", "aekit")):
        seen, wall, cpu = totals[key]
        print(f"| {name} | {seen / wall:.1f} | {seen / wall / ref_wall:.2f}x | {seen / cpu:.1f} | {seen / cpu / ref_cpu:.2f}x |")


if __name__ == "__main__":
    main()
