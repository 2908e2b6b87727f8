"""What each choice of the quality recipe buys: train one `improved` variant for a fixed wall-clock
budget on celeba-10k's 9,000 training faces, then print its mean PSNR on the first 500 test faces.

    python benchmarks/recipe_ablation.py NAME CONFIG_JSON LR BUDGET_S [OPTIONS_JSON]
    OMP_NUM_THREADS=1 python benchmarks/recipe_ablation.py refine '{"linear_path": true, "refine": true}' 2e-3 720

CONFIG_JSON: `ResNetConfig` fields; OPTIONS_JSON: {"bs": 64, "flip": true, "wd": 0, "loss": "mse"|"psnr",
"random_to_latent": std, "train_count": 9000, "epochs": N (with BUDGET_S 0: N passes instead of a time
budget), "shift": pixels, "jitter": strength, "adamw": decoupled weight decay, "ema": decay}. It prints the
PSNR on the 500 test faces and on the first 500 training faces (the overfitting gap). The loop is the trainer's maths without its bookkeeping: Adam over the model's
optimizer groups, one-cycle (15 % warm-up) over as many steps as fit the budget (timed on 5 steps
first), flips, MSE. Run variants two at a time with one thread each so they share the machine
equally; the results (2026-11-27) are in docs/results/2026-11-27-recipe-celeba10k/README.md.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aekit.data import prepare
from aekit.metrics import psnr
from aekit.resnet import ResNetAutoencoder, ResNetConfig
from aekit.train import shift_and_jitter

IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "celeba-10k" / "images"

name, cfg_json, lr, budget = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
opts = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
torch.manual_seed(0)
train = prepare(f"{IMAGES}[:{opts.get('train_count', 9000)}]", progress=False).images
test = prepare(f"{IMAGES}[9000:]", progress=False).images[:500]
model = ResNetAutoencoder(ResNetConfig(**json.loads(cfg_json)))
if model.config.linear_path:
    model.initialize_from_data(train)
    if opts.get("random_to_latent"):
        torch.nn.init.normal_(model.to_latent[1].weight, std=opts["random_to_latent"])
groups = model.optimizer_groups(lr)
if opts.get("adamw"):  # decoupled decay on the convolutional and dense weights only (not BatchNorm, biases, PCA path)
    decayed = [p for p in groups[0]["params"] if p.ndim > 1]
    plain = [p for p in groups[0]["params"] if p.ndim <= 1]
    groups = [{"params": decayed, "lr": lr, "weight_decay": opts["adamw"]}, {"params": plain, "lr": lr, "weight_decay": 0.0},
              *[{**g, "weight_decay": 0.0} for g in groups[1:]]]
    opt = torch.optim.AdamW(groups, lr=lr)
else:
    opt = torch.optim.Adam(groups, lr=lr, weight_decay=opts.get("wd", 0))
ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(opts["ema"]),
                                          use_buffers=True) if opts.get("ema") else None
bs = opts.get("bs", 64)
model = model.to(memory_format=torch.channels_last)
rng = np.random.default_rng(0)


def batches():
    while True:
        order = rng.permutation(len(train))
        for i in range(0, len(order) - bs + 1, bs):
            x = torch.from_numpy(train[np.sort(order[i:i + bs])]).float() / 127.5 - 1
            if opts.get("flip", True):
                m = torch.from_numpy(rng.random(bs) < 0.5)
                x[m] = x[m].flip(-1)
            if opts.get("shift") or opts.get("jitter"):  # the trainer's --shift / --color-jitter
                x = shift_and_jitter(x, opts.get("shift", 0), opts.get("jitter", 0.0), rng)
            yield x.contiguous(memory_format=torch.channels_last)


it = batches()


def step(x):
    out = model(x)
    if opts.get("loss") == "psnr":  # mean per-image log MSE: the mean-PSNR metric itself
        loss = torch.log10(((out - x) ** 2).flatten(1).mean(1) + 1e-8).mean()
    else:
        loss = F.mse_loss(out, x)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if ema is not None:
        ema.update_parameters(model)
    return loss.item()


model.train()
t = time.perf_counter()
for _ in range(5):  # timing steps at the peak rate, before the schedule (the same for every variant)
    step(next(it))
per = (time.perf_counter() - t) / 5
total = max(10, int(budget / per)) if budget > 0 else opts["epochs"] * (len(train) // bs)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=total + 1, pct_start=0.15)
t = time.perf_counter()
losses = []
for s in range(total):
    losses.append(step(next(it)))
    sched.step()
    if s % 50 == 0:
        print(name, s, total, round(float(np.mean(losses[-50:])), 5), flush=True)
wall = time.perf_counter() - t
if ema is not None:
    model = ema.module
model.eval()


def mean_psnr_of(images):
    with torch.inference_mode():
        x = torch.from_numpy(np.array(images)).float() / 127.5 - 1
        out = torch.cat([model(x[i:i + 100]) for i in range(0, len(x), 100)])
        return float(psnr(out.clamp(-1, 1), x).mean())


mean_psnr, train_psnr = mean_psnr_of(test), mean_psnr_of(train[:500])
print(json.dumps({"name": name, "psnr": round(mean_psnr, 3), "train_psnr": round(train_psnr, 3), "steps": total, "images": total * bs, "wall": round(wall),
                  "img_s": round(total * bs / wall, 1)}), flush=True)
