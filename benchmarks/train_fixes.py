"""Which changes to the trainer's step pay on this CPU, each against the reference in the same run.

    python benchmarks/train_fixes.py                              # every variant, 12 alternated steps each
    python benchmarks/train_fixes.py --only 2,3,4 --steps 16      # a few (1, the reference, always runs)
    python benchmarks/train_fixes.py --loss-curve 100             # same seed, same faces: losses step by step

Every variant is one worker process that builds the default model the way ``aekit train`` does
(``Trainer._build_model``, ``TrainingLayout``, ``Trainer.make_optimizer``) and runs ``Trainer._step``
(uint8 batch -> [-1, 1], forward, MSE, ``loss.item()``, backward, Adam, ``zero_grad(set_to_none=True)``)
on the same random uint8 batches. After its warm-up steps, the driver asks the workers for one step at a
time, in ABBA order (1, 2, ..., n, n, ..., 2, 1, ...), so a machine that other jobs share slows every
variant alike. Each step is timed by the wall clock and by the worker's CPU time (all its threads); a
row gives the median over its steps and the median of the step-by-step ratios to the reference's
neighbouring step. A variant "pays" when both ratios are above 1.05.

``--loss-curve N`` trains the reference and ``aekit train`` now for N steps (the trainer's whole loop:
scheduler, data order, ``Trainer.run``) on the same faces, from each of ``--seeds``: the difference
between the two mean curves should be within the spread across seeds. (In fp32 the two do not stay
step for step equal: this model's fp32 gradients at initialisation are 20-70% off float64 ones,
whatever the layout, so any change of kernel moves the run about as much as another seed does.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "data" / "celeba-10k" / "images"

# name, small BatchNorms contiguous (TrainingLayout), extra options
VARIANTS = [
    ("reference: channels_last throughout, BatchNorms included", False, ()),
    ("contiguous throughout (the article's layout)", False, ("contiguous",)),
    ("aekit train now: 3-channel BatchNorms on contiguous copies", True, ()),
    ("aekit train now, a second process (the noise between two identical variants)", True, ()),
    ("now + in-place LeakyReLU after BatchNorm", True, ("inplace",)),
    ("now + stride-1 ConvTranspose2d as Conv2d (flipped weights)", True, ("convt",)),
    ("now + fused Adam", True, ("fused",)),
    ("now + foreach Adam", True, ("foreach",)),
    ("now + glibc malloc keeps freed memory (mallopt)", True, ("malloc",)),
    ("now + one torch thread", True, ("threads1",)),
    ("now + bf16 autocast", True, ("bf16",)),
    ("now + torch.compile (inductor)", True, ("compile",)),
    ("now + in-place LeakyReLU + ConvTranspose2d as Conv2d + fused Adam + mallopt", True,
     ("inplace", "convt", "fused", "malloc")),
]
NOW = 2  # the "now + ..." rows are judged against this one


def keep_freed_memory() -> bool:
    """glibc only: never return freed heap memory to the system, never mmap (no page faults per step)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def worker(index: int, arch: str, batch_size: int, warmup: int) -> None:
    name, small, extra = VARIANTS[index]
    if "malloc" in extra and not keep_freed_memory():
        raise SystemExit("mallopt is not available (not glibc)")
    import numpy as np
    import torch

    from aekit.run_config import TrainConfig
    from aekit.train import Trainer, TrainingLayout

    if "threads1" in extra:
        torch.set_num_threads(1)
    import tempfile

    config = TrainConfig(data="synthetic:64", arch=arch, batch_size=batch_size, device="cpu", sample_every=0,
                         precision="bf16" if "bf16" in extra else "fp32")
    trainer = Trainer(config, tempfile.mkdtemp(), progress=False, log=lambda m: None, run_hooks=False)
    model = trainer._build_model()
    trainer.layout = TrainingLayout(model, channels_last="contiguous" not in extra, small_batchnorm_contiguous=small)
    if "inplace" in extra:  # safe here: in the article's Sequentials a BatchNorm's output has no other reader
        for sequence in model.modules():
            if isinstance(sequence, torch.nn.Sequential):
                for before, act in zip(sequence, list(sequence)[1:]):
                    if isinstance(before, torch.nn.BatchNorm2d) and isinstance(act, torch.nn.LeakyReLU):
                        act.inplace = True
    if "convt" in extra:
        for module in model.modules():
            if isinstance(module, torch.nn.ConvTranspose2d) and module.stride == (1, 1) and module.groups == 1 \
                    and module.output_padding == (0, 0) and module.dilation == (1, 1):
                k = module.kernel_size[0] - 1 - module.padding[0]

                def as_conv(x, m=module, pad=k):
                    return torch.nn.functional.conv2d(x, m.weight.flip(2, 3).transpose(0, 1), m.bias, padding=pad)

                module.forward = as_conv
    if "fused" in extra or "foreach" in extra:
        flag = "fused" if "fused" in extra else "foreach"
        optimizer = torch.optim.Adam(model.optimizer_groups(config.lr), lr=config.lr, **{flag: True})
    else:
        optimizer = trainer.make_optimizer(model)
    net = torch.compile(model) if "compile" in extra else model
    rng = np.random.default_rng(0)
    data = torch.from_numpy(rng.integers(0, 256, size=(4 * batch_size, 3, 64, 64), dtype=np.uint8))
    i = 0

    def step():
        nonlocal i
        batch = data[(i % 4) * batch_size:(i % 4 + 1) * batch_size]
        i += 1
        return trainer._step(net, optimizer, batch)

    w0 = time.perf_counter()
    for _ in range(warmup):
        step()
    print(json.dumps({"setup_s": time.perf_counter() - w0}), flush=True)
    for _ in sys.stdin:
        w, c = time.perf_counter(), time.process_time()
        loss = step()
        print(json.dumps({"wall": time.perf_counter() - w, "cpu": time.process_time() - c, "loss": loss}), flush=True)


def speed(args) -> None:
    chosen = [0] + [int(i) - 1 for i in args.only.split(",") if int(i) != 1] if args.only else list(range(len(VARIANTS)))
    if args.no_compile:
        chosen = [i for i in chosen if "compile" not in VARIANTS[i][2]]
    procs = {}
    for i in chosen:  # warm-ups run in parallel: every process compiles/allocates at once, then they take turns
        procs[i] = subprocess.Popen([sys.executable, __file__, "--worker", str(i), "--arch", args.arch,
                                     "--batch-size", str(args.batch_size), "--warmup", str(args.warmup)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    setup, failed = {}, {}
    for i, p in list(procs.items()):
        line = p.stdout.readline()
        if not line:
            failed[i] = f"worker exited ({p.wait()})"
            del procs[i]
            continue
        setup[i] = json.loads(line)["setup_s"]
    times = {i: {"wall": [], "cpu": [], "loss": []} for i in procs}
    order = list(procs)
    for k in range(args.steps):
        for i in (order if k % 2 == 0 else order[::-1]):
            p = procs[i]
            p.stdin.write("step\n")
            p.stdin.flush()
            d = json.loads(p.stdout.readline())
            for key in ("wall", "cpu", "loss"):
                times[i][key].append(d[key])
    for p in procs.values():
        p.stdin.close()
        p.wait()

    import torch

    print(f"\n{args.arch} model, batch {args.batch_size}, torch {torch.__version__}, {os.cpu_count()} CPU(s); "
          f"{args.warmup} warm-up + {args.steps} alternated steps per variant; load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| variant | images/s (wall) | vs reference | images per CPU-second | vs reference | "
          "vs its base, step by step (wall / CPU) | warm-up s | pays? |")
    print("|---|---|---|---|---|---|---|---|")

    def rates(i):
        return args.batch_size / statistics.median(times[i]["wall"]), args.batch_size / statistics.median(times[i]["cpu"])

    ref_wall, ref_cpu = rates(0)
    for i in chosen:
        name = VARIANTS[i][0]
        if i in failed:
            print(f"| {name} | – | – | – | – | – | – | failed: {failed[i]} |")
            continue
        base = NOW if name.startswith("now +") and NOW in times else 0  # each change against what it is added to
        wall, cpu = rates(i)
        base_wall, base_cpu = rates(base)
        pair_wall = statistics.median(a / b for a, b in zip(times[base]["wall"], times[i]["wall"]))
        pair_cpu = statistics.median(a / b for a, b in zip(times[base]["cpu"], times[i]["cpu"]))
        gains = (wall / base_wall, cpu / base_cpu, pair_wall, pair_cpu)
        verdict = ("reference" if i == 0 else "yes" if min(gains) > 1.05 else "no" if max(gains) < 0.95
                   else "no (within 5%)" if min(gains) >= 0.95 and max(gains) <= 1.05
                   else "mixed (wall clock and CPU time disagree)")
        print(f"| {name} | {wall:.1f} | {wall / ref_wall:.2f}x | {cpu:.1f} | {cpu / ref_cpu:.2f}x | "
              f"{'–' if i == 0 else f'{pair_wall:.2f}x / {pair_cpu:.2f}x'}{' (vs now)' if base == NOW else ''} | "
              f"{setup[i]:.0f} | {verdict} |")


def loss_curve(args) -> None:
    import tempfile

    import numpy as np
    import torch

    from aekit.run_config import TrainConfig
    from aekit.train import Trainer, TrainingLayout

    class Reference(Trainer):
        def training_model(self, model):
            self.layout = TrainingLayout(model, small_batchnorm_contiguous=False)
            return model

    class Contiguous(Trainer):
        def training_model(self, model):
            self.layout = TrainingLayout(model, channels_last=False)
            return model

    data = str(args.data) if args.data else f"synthetic:{args.images}"
    steps_per_epoch = args.images // args.batch_size
    epochs = -(-args.loss_curve // steps_per_epoch)
    seeds = [int(v) for v in args.seeds.split(",")]
    variants = [("reference", Reference, "fp32"), ("contiguous (article's layout)", Contiguous, "fp32"),
                ("aekit train now", Trainer, "fp32")]
    if args.bf16_curve:
        variants.append(("now, bf16 autocast", Trainer, "bf16"))
    if args.no_contiguous_curve:
        variants = [v for v in variants if v[1] is not Contiguous]
    losses = {}
    for seed in seeds:  # seed by seed, every variant: a machine that slows down slows all alike
        for name, cls, precision in variants:
            recorded = []
            real = cls._step

            def step(self, *a, _real=real, _rec=recorded, **k):
                value = _real(self, *a, **k)
                _rec.append(value)
                return value

            config = TrainConfig(data=data, limit=args.images if args.data else None, arch=args.arch, epochs=epochs,
                                 batch_size=args.batch_size, seed=seed, sample_every=0, device="cpu", precision=precision)
            w0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                trainer = cls(config, out, progress=False, log=lambda m: None, run_hooks=False)
                trainer._step = step.__get__(trainer)
                trainer.run()
            losses[name, seed] = np.array(recorded[: args.loss_curve])
            print(f"  {name}, seed {seed}: {len(recorded)} steps in {time.perf_counter() - w0:.0f} s", flush=True)
    if args.save_losses:
        np.savez(args.save_losses, **{f"{name}|{seed}": v for (name, seed), v in losses.items()})
    names = [v[0] for v in variants]
    curves = {name: np.stack([losses[name, seed] for seed in seeds]) for name in names}  # (seeds, steps)
    ref = curves["reference"]
    print(f"\n{args.arch} model, batch {args.batch_size}, the first {args.images} images of {data}, {epochs} epoch(s) of "
          f"{steps_per_epoch} steps (LinearLR to 0 over the run), seeds {args.seeds}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads. Loss: mean over the seeds and over each range of steps; "
          f"seed spread: the standard deviation across the reference's seeds.\n")
    print("| steps | " + " | ".join(names) + " | " + " | ".join(f"{n} − reference" for n in names[1:])
          + " | reference seed spread |")
    print("|---" * (2 * len(names) + 1) + "|")
    n = ref.shape[1]
    edges = sorted({0, *range(0, n, max(n // 10, 1)), n})
    for a, b in zip(edges, edges[1:]):
        means = [curves[k][:, a:b].mean() for k in names]
        spread = ref[:, a:b].mean(1).std(ddof=1) if len(seeds) > 1 else float("nan")
        print(f"| {a + 1}–{b} | " + " | ".join(f"{m:.4f}" for m in means) + " | "
              + " | ".join(f"{m - means[0]:+.4f}" for m in means[1:]) + f" | {spread:.4f} |")
    print()
    last = max(n // 10, 1)
    for k in names:
        finals = curves[k][:, -last:].mean(1)
        print(f"- {k}: mean loss of the last {last} steps per seed " + ", ".join(f"{v:.4f}" for v in finals)
              + f" (mean {finals.mean():.4f})")
    for k in names[1:]:
        same_seed = np.abs(curves[k] - ref).mean() / ref.mean()
        print(f"- {k} against the reference with the same seed: mean |loss difference| per step {100 * same_seed:.1f}% of the loss")
    if len(seeds) > 1:
        cross = np.mean([np.abs(ref[i] - ref[j]).mean() for i in range(len(seeds)) for j in range(len(seeds)) if i < j])
        print(f"- reference against itself with another seed: {100 * cross / ref.mean():.1f}%")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="article")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12, help="Timed steps per variant.")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--only", default=None, help="Comma-separated variant numbers (1-based; 1 is the reference).")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--loss-curve", type=int, default=0, metavar="N", help="Compare losses over N steps instead.")
    parser.add_argument("--data", default=FACES if FACES.is_dir() else None, help="Faces for --loss-curve.")
    parser.add_argument("--images", type=int, default=1280, help="Images for --loss-curve (the first ones).")
    parser.add_argument("--bf16-curve", action="store_true", help="--loss-curve also trains aekit train now in bf16.")
    parser.add_argument("--seeds", default="0,1,2", help="Seeds for --loss-curve.")
    parser.add_argument("--save-losses", default=None, metavar="NPZ", help="--loss-curve: also save every loss.")
    parser.add_argument("--no-contiguous-curve", action="store_true", help="--loss-curve without the contiguous run.")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.arch, args.batch_size, args.warmup)
    elif args.loss_curve:
        loss_curve(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
