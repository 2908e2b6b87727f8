"""Training throughput (images/s) of aekit's trainer against the article's loop, same model, same run.

    python benchmarks/train_throughput.py                 # article model, batch 64, 12 batches each
    python benchmarks/train_throughput.py --arch small --batches 30

The reference reproduces the article's loop: a DataLoader over a float32 (N, 3, 64, 64) array in
[-1, 1], shuffle, drop_last, Adam at 2e-4, LinearLR, MSE, fp32 (with both halves in the optimizer, as
aekit does, so the work per step is equal). aekit's number is the trainer's own images/s from
metrics.jsonl (the whole epoch: batching, the step, the scheduler, progress). Both skip no warm-up:
each side's first batch is included, like a user's first epoch.
"""

import argparse
import json
import tempfile
import time

import numpy as np
import torch

import aekit
from aekit.train import Trainer, TrainConfig


def article_loop(arch: str, images: np.ndarray, batch_size: int) -> float:
    """Images/s of the article's training loop over `images` (uint8 NCHW), one epoch."""
    torch.manual_seed(0)
    model = aekit.create_model(arch)
    data = (images.astype(np.float32) - 127.5) / 127.5
    loader = torch.utils.data.DataLoader(dataset=data, batch_size=batch_size, shuffle=True, drop_last=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1, end_factor=0, total_iters=len(loader))
    criterion = torch.nn.MSELoss()
    model.train()
    start, seen = time.perf_counter(), 0
    for batch in loader:
        pred = model.decoder(model.encoder(batch))
        loss = criterion(pred, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        seen += len(batch)
    return seen / (time.perf_counter() - start)


def aekit_trainer(arch: str, n_images: int, batch_size: int, precision: str) -> float:
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(data=f"synthetic:{n_images}", arch=arch, epochs=1, batch_size=batch_size,
                             sample_every=0, precision=precision, device="cpu")
        Trainer(config, out, progress=False, log=lambda m: None, run_hooks=False).run()
        with open(f"{out}/metrics.jsonl") as fh:
            return json.loads(fh.readline())["images_per_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="article")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=12)
    args = parser.parse_args()
    n = args.batch_size * args.batches
    from aekit.data import prepare

    images = np.asarray(prepare(f"synthetic:{n}", 64, progress=False).images)  # cached for the trainer too
    rows = [("article's loop (fp32)", article_loop(args.arch, images, args.batch_size)),
            ("aekit train (fp32)", aekit_trainer(args.arch, n, args.batch_size, "fp32"))]
    print(f"{args.arch}, batch {args.batch_size}, {args.batches} batches, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    print("| loop | images/s | vs reference |")
    print("|---|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:.1f} | {rate / rows[0][1]:.2f}x |")


if __name__ == "__main__":
    main()
