"""The trainer: the article's recipe (Adam 2e-4, batch 64, MSE, LinearLR 1 -> 0) with both halves trained.

A model may bring its own loss: ``training_loss(pred, target) -> (loss, {name: float})``, called after each
forward pass instead of the reconstruction loss (the ``codec`` preset's rate + lambda * distortion); its parts
are averaged over the epoch into metrics.jsonl as ``train_NAME``, and ``evaluate`` adds ``val_bpp`` from it.

A run directory holds the model (``model.safetensors`` + ``config.json``), ``training_state.safetensors``
for ``--resume``, ``metrics.jsonl`` (one line per epoch) and ``samples/epoch_NNNN.png`` grids.
"""

from __future__ import annotations

import contextlib
import errno as errno_codes  # `errno` is the name of a parameter below
import json
import math
import os
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors import SafetensorError
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from . import checkpoint, io
from .command_tools import skipped_lines
from .devices import distributed_context, resolve_device  # noqa: F401  (also aekit.train.*)
from .data import ImageTensorSet, PreparedImages, prepare, to_float
from .run_config import (  # noqa: F401  (also importable as aekit.train.*)
    SCHEDULES, TrainConfig, TrainingRecord, read_run_config, split_train_val, training_images, training_record)
from .errors import TrainingError, first_line
from .images import image_grid, to_uint8_hwc
from .loading import load
from .metrics import psnr
from .noise import parse_noise
from .objectives import build_objectives, parse_objectives
from .plugins import call_isolated
from .validate import parse_json


def make_scheduler(optimizer, schedule: str, total_steps: int):
    """The learning-rate schedule over the whole run, stepped once per batch."""
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                   total_steps=total_steps + 1, pct_start=0.15)  # +1: end on the floor
    if schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=0.0, total_iters=total_steps)


def shift_and_jitter(x: torch.Tensor, shift: int, jitter: float, rng: np.random.Generator) -> torch.Tensor:
    """Augment a batch in [-1, 1]: translate each image by up to `shift` pixels (edges reflected), then scale
    its saturation and contrast by 1 ± `jitter` and add ± `jitter` brightness (uniform draws per image)."""
    n, _, height, width = x.shape
    if shift:
        if shift >= min(height, width):
            raise TrainingError(f"--shift {shift} must be smaller than the image ({height}x{width})")
        padded = torch.nn.functional.pad(x, (shift, shift, shift, shift), mode="reflect")
        dx, dy = rng.integers(0, 2 * shift + 1, size=(2, n))
        x = torch.stack([padded[i, :, dy[i]:dy[i] + height, dx[i]:dx[i] + width] for i in range(n)])
    if jitter:
        saturation, contrast, brightness = torch.from_numpy(rng.uniform(-jitter, jitter, size=(3, n, 1, 1, 1))).to(x)
        gray = x.mean(1, keepdim=True)
        x = gray + (x - gray) * (1 + saturation)
        mean = x.mean((1, 2, 3), keepdim=True)
        x = ((x - mean) * (1 + contrast) + mean + brightness).clamp(-1, 1)
    return x


class Trainer:
    """Trains one model into `out`; `run()` returns the trained model."""

    def __init__(self, config: TrainConfig, out, progress: bool = True, log=print, run_hooks: bool = True):
        config.check()
        self.config, self.out, self.progress, self.log = config, Path(out), progress, log
        self.noise = None  # noisy-input training: the parsed --noise spec
        if config.noise:
            self.noise = parse_noise(config.noise)
        # --objective: the specs now (names and weights checked by config.check), the modules once the model exists
        self.objective_specs = {spec.name: spec for spec in parse_objectives(config.objectives)}
        self.objectives = torch.nn.ModuleDict()
        self.step_objective_losses: dict[str, float] = {}  # the last step's unweighted objective losses
        self.step_model_losses: dict[str, float] = {}  # the last step's parts of a model's own loss (training_loss)
        self.rank, self.world_size = distributed_context()
        if self.world_size > 1 and self.objective_specs:
            raise TrainingError("--objective is not supported with several processes yet (the objectives' own "
                                "parameters would not be averaged across them); train in one process")
        if self.world_size > 1:
            if config.on_nan == "skip":
                raise TrainingError("--on-nan skip is not supported with several processes (a skip on one rank "
                                    "would desynchronise the others); use --on-nan stop")
            self.progress = progress and self.rank == 0
            self.log = log if self.rank == 0 else (lambda message: None)
        self.run_hooks = run_hooks  # plugins' on_train_end (e.g. fitting a latent prior)
        self.device = resolve_device(config.device)
        self.precision = config.precision if config.precision != "auto" else ("bf16" if self.device.type == "cuda" else "fp32")
        self.layout = None  # set by training_model

    # -- set-up -------------------------------------------------------------------------------------

    def _prepare_data(self, image_size: int):
        cfg = self.config
        if self.rank != 0:  # rank 0 decodes into the cache first; the others then read it
            _barrier()
        data = prepare(cfg.data, image_size, cfg.skip, cfg.limit, cfg.files, progress=self.progress)
        if self.world_size > 1 and self.rank == 0:
            _barrier()
        if data.skipped:
            self.log(f"skipped {len(data.skipped)} unreadable image(s):")
            for line in skipped_lines(data.skipped, count=False):  # the listing every command prints, names escaped
                self.log(line)
        train_idx, val_idx = split_train_val(len(data), cfg.val_fraction, cfg.seed)
        train_images = data.images if len(val_idx) == 0 else np.asarray(data.images[train_idx])
        val_images = np.asarray(data.images[val_idx]) if len(val_idx) else None
        if cfg.val_data:
            held_out = prepare(cfg.val_data, image_size, progress=self.progress)
            val_images = np.asarray(held_out.images)
        if len(train_images) < cfg.batch_size:
            raise TrainingError(f"only {len(train_images)} training images, fewer than --batch-size {cfg.batch_size}")
        return data, train_images, val_images

    def _build_model(self):
        cfg = self.config
        torch.manual_seed(cfg.seed)
        if cfg.init:
            model = load(cfg.init)
            model.train()
        else:
            model = checkpoint.create_model(cfg.arch, **cfg.model_config)
        return model.to(self.device)

    def _build_objectives(self, model) -> torch.nn.ModuleDict:
        """The --objective modules for `model`, on the device. Their initial weights come from their own seeds
        (the run's seed, their place): the global random stream, and so the model's training, is as without them."""
        objectives = torch.nn.ModuleDict()
        for index, spec in enumerate(self.objective_specs.values()):
            seed = int(np.random.SeedSequence([self.config.seed, 6, index]).generate_state(1)[0])
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                objectives.update(build_objectives([spec], model))
        return objectives.to(self.device)

    # -- the loop -----------------------------------------------------------------------------------

    def run(self, resume: bool = False):
        cfg = self.config
        model = self._build_model()
        self.objectives = self._build_objectives(model)  # before the data: a bad argument fails at once
        if hasattr(model, "training_loss") and cfg.loss != "mse":
            raise TrainingError(f"--loss {cfg.loss} does not apply to a {checkpoint.architecture_name(model)} model: it "
                                "trains on its own loss (rate + lambda * distortion); leave --loss out")
        data, train_images, val_images = self._prepare_data(model.config.image_size)
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        loader = ImageTensorSet(train_images, cfg.batch_size, drop_last=True, rank=self.rank, world_size=self.world_size)
        if len(loader) == 0:
            raise TrainingError(f"{len(train_images)} training images make no full batch of {cfg.batch_size} "
                                f"for each of {self.world_size} processes")
        # the article trains only the decoder (optimizer over decoder.parameters()); we train both halves
        if not cfg.init and not resume:
            model.initialize_from_data(train_images)  # e.g. the improved preset starts at PCA
        optimizer = self.make_optimizer(model)
        total_steps = cfg.epochs * len(loader)
        scheduler = make_scheduler(optimizer, cfg.schedule, total_steps)
        start_epoch, start_batch, elapsed = 0, 0, 0.0
        lead = self.rank == 0  # only the first process writes files
        if resume:
            if lead:
                io.remove_temporaries(self.out)  # left by a killed process; the files they were for are intact
            if (self.out / checkpoint.STATE_NAME).exists():
                info = checkpoint.load_training_state(self.out, model, optimizer, scheduler, self.objectives,
                                                      self.config.objectives)
                start_epoch, start_batch, elapsed = info["epoch"], info["batch"], info.get("elapsed_s", 0.0)
                self.log(f"resuming {self.out} at epoch {start_epoch + 1}, batch {start_batch}")
            else:  # stopped before its first checkpoint: nothing to keep, start over
                self.log(f"{self.out} has no checkpoint yet; starting the run from the beginning")
            if lead:
                self._truncate_metrics(start_epoch)
        model = self.training_model(model)
        net = model
        if self.world_size > 1:  # gradients are averaged across processes; BatchNorm statistics come from rank 0
            net = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if lead:
            checkpoint.record_latest(self.out)
            self._write_run_file(data, len(train_images), 0 if val_images is None else len(val_images))
        preview = self._preview_batch(train_images, val_images)

        epoch, completed = start_epoch, start_batch
        restore_sigterm = _stop_cleanly_on_sigterm()
        try:
            for epoch in range(start_epoch, cfg.epochs):
                first = completed = start_batch if epoch == start_epoch else 0
                t0, seen, loss_sum, nb, skipped = time.perf_counter(), 0, 0.0, 0, 0
                objective_sums = dict.fromkeys(self.objectives, 0.0)
                model_sums: dict[str, float] = {}  # the parts of a model's own loss (training_loss), summed
                model.train()
                batches = loader.batches(cfg.seed, epoch, start=first)
                bar = tqdm(batches, total=len(loader), initial=first, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                           unit="batch", disable=not self.progress, leave=False)
                for batch in bar:
                    loss = self._step(net, optimizer, batch, (cfg.seed, epoch, completed * self.world_size + self.rank))
                    completed += 1
                    seen += len(batch)
                    if loss is None:  # skipped (--on-nan skip): as if the step had not been taken
                        skipped += 1
                        continue
                    scheduler.step()
                    loss_sum += loss
                    for name, value in self.step_objective_losses.items():
                        objective_sums[name] += value
                    for name, value in self.step_model_losses.items():
                        model_sums[name] = model_sums.get(name, 0.0) + value
                    nb += 1
                    rate = seen / max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}", img_s=f"{rate:.0f}")
                bar.close()
                if skipped and not nb and completed > first:
                    raise TrainingError(f"every step of epoch {epoch + 1} had a non-finite loss; the last good "
                                        f"checkpoint in {self.out} is kept (try a lower --lr)")
                epoch_time = time.perf_counter() - t0
                elapsed += epoch_time
                row = {"epoch": epoch + 1, "step": (epoch + 1) * len(loader), "loss": loss_sum / max(nb, 1),
                       "lr": scheduler.get_last_lr()[0], "time_s": round(epoch_time, 3),
                       "images_per_s": round(seen / max(epoch_time, 1e-9), 1), **_objective_columns(objective_sums, nb),
                       **_model_loss_columns(model_sums, nb)}
                if cfg.on_nan == "skip":
                    row["skipped_steps"] = skipped
                if self.world_size > 1:
                    row["processes"] = self.world_size
                if not lead:
                    continue
                if val_images is not None:
                    row.update(self.evaluate(model, val_images))
                self._append_metrics(row)
                self.log(_format_row(row, cfg.epochs))
                self._save(model, optimizer, scheduler, epoch + 1, 0, elapsed, row, data)
                if cfg.sample_every and ((epoch + 1) % cfg.sample_every == 0 or epoch + 1 == cfg.epochs):
                    self._save_samples(model, preview, epoch + 1)
        except KeyboardInterrupt:
            # Ctrl-C: keep everything up to the last finished batch, then stop cleanly
            if not lead:
                raise
            if completed >= len(loader):
                if not any(r["epoch"] == epoch + 1 for r in self._read_metrics()):
                    # stopped between the epoch's last batch and its metrics row: write the row (no validation)
                    epoch_time = time.perf_counter() - t0
                    elapsed += epoch_time
                    self._append_metrics({"epoch": epoch + 1, "step": (epoch + 1) * len(loader),
                                          "loss": loss_sum / max(nb, 1), "lr": scheduler.get_last_lr()[0],
                                          "time_s": round(epoch_time, 3),
                                          "images_per_s": round(seen / max(epoch_time, 1e-9), 1),
                                          **_objective_columns(objective_sums, nb),
                                          **_model_loss_columns(model_sums, nb)})
                epoch, completed = epoch + 1, 0
            self._save(model, optimizer, scheduler, epoch, completed, elapsed, None, data)
            self.log(f"interrupted: saved a checkpoint at epoch {epoch + 1}, batch {completed}; "
                     f"continue with `aekit train --resume {self.out}`")
            raise
        finally:
            restore_sigterm()
        if self.world_size > 1:  # every rank ends with rank 0's model, BatchNorm statistics included
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)
            _barrier()
        model.eval()
        self.layout.remove()
        if self.run_hooks and lead:
            call_isolated("on_train_end", model=model, run_dir=self.out, train_images=train_images)
            model.eval()
        return model

    def training_model(self, model):
        """The model laid out as the loop trains it (``TrainingLayout``); checkpoints are still saved
        contiguous (see _save), and ``run`` returns the model as it was built."""
        self.layout = TrainingLayout(model, small_batchnorm_contiguous=self.device.type == "cpu")
        return model

    def make_optimizer(self, model) -> torch.optim.Optimizer:
        """Adam over the model's parameter groups at the run's learning rate and weight decay, then one group
        per training objective that has parameters (after the model's: the model's state indices stay put)."""
        cfg = self.config
        groups = model.optimizer_groups(cfg.lr)
        groups += [{"params": params, "lr": cfg.lr} for objective in self.objectives.values()
                   if (params := list(objective.parameters()))]
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def model_input(self, batch: torch.Tensor) -> torch.Tensor:
        """A uint8 batch as the model's input: float [-1, 1] on the device, in the training layout."""
        return self._laid_out(to_float(batch.to(self.device, non_blocking=True)))

    def _laid_out(self, x: torch.Tensor) -> torch.Tensor:
        """`x` in the training layout (channels_last for a model the caller built and laid out itself)."""
        return self.layout.input(x) if self.layout is not None else x.contiguous(memory_format=torch.channels_last)

    def _step(self, model, optimizer, batch, position=(0, 0, 0)) -> float | None:
        """One optimisation step; its loss, or None when the loss was not finite and `on_nan` is skip.

        `position` (seed, epoch, batch) seeds the flips and the noise, so a resumed run sees the same.
        """
        x = to_float(batch.to(self.device, non_blocking=True))
        if self.config.flip:
            flips = torch.from_numpy(np.random.default_rng([*position, 1]).random(len(x)) < 0.5).to(x.device)
            x = torch.where(flips[:, None, None, None], x.flip(-1), x)
        if self.config.shift or self.config.color_jitter:
            x = shift_and_jitter(x, self.config.shift, self.config.color_jitter, np.random.default_rng([*position, 3]))
        source = x if self.noise is None else self.noise.apply_to_tensor(x, [*position, 2])
        x, source = self._laid_out(x), self._laid_out(source)
        skip = self.config.on_nan == "skip"
        # BatchNorm's running statistics change in the forward pass: keep them to undo a skipped step
        holders = [model, self.objectives] if self.objectives else [model]
        buffers = [{k: v.clone() for k, v in m.named_buffers()} for m in holders] if skip else None
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            pred = model(source)
        plain = getattr(model, "module", model)
        if hasattr(plain, "training_loss"):  # a model's own loss (the codec's rate + lambda * distortion)
            loss, self.step_model_losses = plain.training_loss(pred.float(), x)
        else:
            loss = reconstruction_loss(pred.float(), x, self.config.loss)
        total = loss
        if self.objectives:  # a run without --objective takes none of this: same draws, same loss as ever
            total, values = self._add_objectives(model, x, loss, position)
        value = loss.item()
        total_value = value if total is loss else total.item()
        if not math.isfinite(total_value):
            if skip:
                optimizer.zero_grad(set_to_none=True)
                with torch.no_grad():
                    for holder, saved in zip(holders, buffers):
                        for name, buffer in holder.named_buffers():
                            buffer.copy_(saved[name])
                return None
            raise TrainingError(f"the loss became {total_value}; the last good checkpoint in {self.out} is kept "
                                "(try a lower --lr, or --on-nan skip)")
        if self.objectives:
            self.step_objective_losses = dict(zip(self.objectives, values.tolist()))
        total.backward()
        if self.config.clip_grad:  # a group marked "clip": False (a codec's coding ranges) has its own loss
            torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups if group.get("clip", True)
                                            for p in group["params"]], self.config.clip_grad)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return value

    def _add_objectives(self, model, x, loss, position):
        """(the reconstruction `loss` plus each objective's loss times its weight; the unweighted losses, detached).

        Objective i draws its random choices from ``default_rng([seed, epoch, batch, 5, i])``; it gets the plain
        model (not a DistributedDataParallel wrapper) and the clean batch `x`, under the run's autocast."""
        plain = getattr(model, "module", model)
        total, values = loss, []
        for index, (name, objective) in enumerate(self.objectives.items()):
            rng = np.random.default_rng([*position, 5, index])
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                term = objective.loss(plain, x, rng)
            term = term.float()
            if term.numel() != 1:
                raise TrainingError(f"objective {name!r} returned a loss of shape {tuple(term.shape)}, not a scalar")
            total = total + self.objective_specs[name].weight * term.reshape(())
            values.append(term.detach().reshape(()))
        return total, torch.stack(values).cpu()

    @torch.no_grad()
    def evaluate(self, model, images: np.ndarray, batch_size: int = 256) -> dict:
        """Held-out MSE loss and mean per-image PSNR (dB, [0, 1] scale); with noise, also the noisy input's PSNR.

        The held-out noise is the same at every epoch (seeded by the run's seed), so epochs compare.
        """
        model.eval()
        losses, psnrs, noisy_psnrs, rates = [], [], [], []
        for i in range(0, len(images), batch_size):
            x = to_float(torch.from_numpy(np.array(images[i : i + batch_size])).to(self.device))
            source = x if getattr(self, "noise", None) is None else self.noise.apply_to_tensor(x, [self.config.seed, i, 3])
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                pred = model(source).float()
            if hasattr(model, "training_loss"):  # the codec's rate at its default quality, rounded as coding rounds
                rates.append(model.training_loss(pred, x)[1]["bpp"] * len(x))
            losses.append(((pred - x) ** 2).flatten(1).mean(1).cpu())
            psnrs.append(psnr(pred.cpu(), x.cpu()))
            if source is not x:
                noisy_psnrs.append(psnr(source.cpu(), x.cpu()))
        model.train()
        row = {"val_loss": float(torch.cat(losses).mean()), "val_psnr": float(np.concatenate(psnrs).mean())}
        if rates:
            row["val_bpp"] = float(sum(rates) / len(images))
        if noisy_psnrs:
            row["val_noisy_psnr"] = float(np.concatenate(noisy_psnrs).mean())
        return row

    # -- files ----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self, path: Path):
        """A failed write as a TrainingError naming the file, why, and how to go on. safetensors reports a
        full disk as "SafetensorError: ... (os error 28)", without the file's name."""
        try:
            yield
        except OSError as exc:  # aekit.io names the file the user sees, not its temporary
            raise self._write_failed(Path(exc.filename) if exc.filename else path, exc.strerror or first_line(exc),
                                     exc.errno) from None
        except SafetensorError as exc:
            found = re.search(r"os error (\d+)", str(exc))
            number = int(found[1]) if found else None
            raise self._write_failed(path, os.strerror(number) if number else first_line(exc), number) from None

    def _write_failed(self, path: Path, reason: str, errno: int | None) -> TrainingError:
        message = f"{path}: could not write it ({reason})"
        if errno in (errno_codes.ENOSPC, getattr(errno_codes, "EDQUOT", errno_codes.ENOSPC)):
            again = (f"continue with `aekit train --resume {self.out}`" if (self.out / "run.json").is_file()
                     and path.name != "run.json" else "run the command again")
            message += f"; nothing written before is damaged (writes are atomic): free some space, then {again}"
        return TrainingError(message)

    def _save(self, model, optimizer, scheduler, epoch, batch, elapsed, row, data: PreparedImages):
        summary = self._summary(epoch, batch, elapsed, row, data)
        plain = model.to(memory_format=torch.contiguous_format)
        with self._writing(self.out / checkpoint.STATE_NAME):
            checkpoint.save_training_state(self.out, plain, optimizer, scheduler,
                                           {"epoch": epoch, "batch": batch, "elapsed_s": elapsed},
                                           self.objectives, self.config.objectives)
        with self._writing(self.out / checkpoint.WEIGHTS_NAME):  # config.json's own OSError names it
            checkpoint.save_model(plain, self.out, training=summary)
        self.layout.apply_formats()
        model.training_summary = summary

    def _summary(self, epoch, batch, elapsed, row, data) -> dict:
        last = row or self._last_metrics() or {}
        return {
            "images": len(data), "skipped": len(data.skipped),
            "epochs_done": epoch, "epochs": self.config.epochs, "batch_in_epoch": batch,
            "elapsed_s": round(elapsed, 1), "device": str(self.device), "precision": self.precision,
            "settings": self.config.to_dict(),  # the one copy a checkpoint carries: read it with training_record()
            "final": {k: v for k, v in last.items() if k in ("loss", "val_loss", "val_psnr", "val_noisy_psnr", "val_bpp", "train_bpp",
                                                                   "train_psnr", "images_per_s")},
        }

    def _write_run_file(self, data, n_train, n_val):
        # the settings `--resume` reads (read_run_config): written at the start, before any checkpoint exists
        with self._writing(self.out / "run.json"):
            io.write_json(self.out / "run.json", {"config": self.config.to_dict(), "data": data.source,
                                                  "train_images": n_train, "val_images": n_val})

    def _append_metrics(self, row: dict) -> None:
        path = self.out / "metrics.jsonl"
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        with self._writing(path):
            io.write_text(path, old + json.dumps(row) + "\n")

    def _read_metrics(self) -> list[dict]:
        path = self.out / "metrics.jsonl"
        if not path.exists():
            return []
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            # a diverged validation loss is recorded as NaN; anything else unreadable names its line
            row = parse_json(line, f"{path}, line {number}", TrainingError, allow_nan=True, hint="fix or delete that line")
            if not isinstance(row, dict) or isinstance(row.get("epoch"), bool) or not isinstance(row.get("epoch"), int):
                raise TrainingError(f"{path}, line {number}: not a metrics row (no whole-number \"epoch\"); "
                                    "fix or delete that line")
            rows.append(row)
        return rows

    def _last_metrics(self):
        rows = self._read_metrics()
        return rows[-1] if rows else None

    def _truncate_metrics(self, epochs_done: int) -> None:
        rows = [r for r in self._read_metrics() if r["epoch"] <= epochs_done]
        with self._writing(self.out / "metrics.jsonl"):
            io.write_text(self.out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    def _preview_batch(self, train_images, val_images, n: int = 8) -> torch.Tensor:
        source = val_images if val_images is not None and len(val_images) >= n else train_images
        return to_float(torch.from_numpy(np.array(source[:n])))

    @torch.no_grad()
    def _save_samples(self, model, preview, epoch):
        model.eval()
        rows, labels = [preview], ["original"]
        source = preview if self.noise is None else self.noise.apply_to_tensor(preview, [self.config.seed, 0, 4])
        if self.noise is not None:
            rows.append(source)
            labels.append("noisy")
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            rows.append(model(source.to(self.device)).float().cpu())
            labels.append("denoised" if self.noise is not None else "recon")
            if model.decodes_latents:
                # the article's samples: decoder(randn); an autoencoder's latents are not N(0, I), so expect blur
                generator = torch.Generator().manual_seed(1234)
                z = torch.randn(len(preview), model.config.latent_dim, generator=generator).to(self.device)
                rows.append(model.decoder(z).float().cpu())
                labels.append("N(0,I)")
        model.train()
        grid = image_grid([to_uint8_hwc(r) for r in rows], labels, title=f"{self.out.name}  epoch {epoch}")
        path = self.out / "samples" / f"epoch_{epoch:04d}.png"
        with self._writing(path):
            path.parent.mkdir(exist_ok=True)
            io.save_image(path, grid)


class TrainingLayout:
    """How the loop lays a model out while it trains; ``remove()`` gives the model back as it was built.

    Convolutions run ``channels_last`` (faster on GPUs and on CPUs, benchmarks/train_fixes.py). With
    ``small_batchnorm_contiguous`` (the trainer's choice on a CPU), BatchNorm layers with at most
    ``SMALL_CHANNELS`` channels (the article model's 3-channel layers at 64x64 and 79x79) compute on a
    contiguous copy of their input and hand back a channels_last output: on a 3-channel channels_last
    tensor, PyTorch's CPU BatchNorm runs its forward and backward 5-9x slower than on a contiguous one,
    while the convolutions around it are faster channels_last. The copies cost less than a tenth of what
    they save (benchmarks/train_profile.py, benchmarks/train_fixes.py). The maths is the same.
    """

    SMALL_CHANNELS = 4

    def __init__(self, model, channels_last: bool = True, small_batchnorm_contiguous: bool = True):
        self.model, self.channels_last, self.handles = model, channels_last, []
        if channels_last and small_batchnorm_contiguous:
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d) and module.num_features <= self.SMALL_CHANNELS:
                    self.handles += [module.register_forward_pre_hook(_contiguous_input),
                                     module.register_forward_hook(_channels_last_output)]
        self.apply_formats()

    def apply_formats(self) -> None:
        """(Re)lay out the parameters."""
        self.model.to(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """The batch in the training layout."""
        return x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def remove(self) -> None:
        """Hooks off, parameters contiguous."""
        for handle in self.handles:
            handle.remove()
        self.handles = []
        self.model.to(memory_format=torch.contiguous_format)


def _contiguous_input(module, inputs):
    return (inputs[0].contiguous(), *inputs[1:])


def _channels_last_output(module, inputs, output):
    return output.contiguous(memory_format=torch.channels_last)


def _barrier() -> None:
    """Wait for every process (a no-op when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


PSNR_LOSS_FLOOR = 1e-10  # keeps log(MSE) finite for an image reproduced exactly ([-1, 1] scale: about 106 dB)


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """``mse``: the batch's mean squared error; ``psnr``: the mean over images of log(MSE of the image), which is
    minus the mean per-image PSNR up to a constant factor (10 / ln 10) and offset."""
    if kind == "mse":
        return torch.nn.functional.mse_loss(pred, target)
    per_image = (pred - target).pow(2).flatten(1).mean(dim=1)  # (N,)
    return torch.log(per_image + PSNR_LOSS_FLOOR).mean()


def _stop_cleanly_on_sigterm():
    """Treat SIGTERM (schedulers, `kill`) like Ctrl-C while training; returns a function that undoes it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _objective_columns(sums: dict, steps: int) -> dict:
    """The metrics row's mean unweighted loss of each training objective over the epoch: ``loss_NAME``."""
    return {f"loss_{name}": total / max(steps, 1) for name, total in sums.items()}


MODEL_LOSS_PREFIX = "train_"  # metrics.jsonl's columns for the parts of a model's own loss: train_bpp, train_psnr...


def _model_loss_columns(sums: dict, steps: int) -> dict:
    """The metrics row's mean of each part of a model's own loss (``training_loss``) over the epoch."""
    return {f"{MODEL_LOSS_PREFIX}{name}": total / max(steps, 1) for name, total in sums.items()}


def _format_row(row: dict, epochs: int) -> str:
    text = f"epoch {row['epoch']}/{epochs}: loss {row['loss']:.4f}"
    for key, value in row.items():
        if key.startswith("loss_"):
            text += f", {key[5:]} {value:.4f}"
    for key, value in row.items():
        if key.startswith(MODEL_LOSS_PREFIX) and key[len(MODEL_LOSS_PREFIX):] in ("bpp", "psnr"):
            text += f", {key[len(MODEL_LOSS_PREFIX):]} {value:.3f}"
    if "val_loss" in row:
        text += f", val loss {row['val_loss']:.4f}, val PSNR {row['val_psnr']:.2f} dB"
    if "val_bpp" in row:
        text += f", val bpp {row['val_bpp']:.3f}"
    if "val_noisy_psnr" in row:
        text += f" (noisy input {row['val_noisy_psnr']:.2f} dB)"
    return text + f", {row['images_per_s']:.0f} img/s"
