"""The `aekit` command line: one click group; commands come from the registry (core and plugins alike)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import traceback
from datetime import datetime
from pathlib import Path

import click

from .checkpoint import read_config
from .command_tools import check_output_folder
from .data import split_slice
from .devices import distributed_context
from .errors import AekitError, first_line
from .io import check_writable
from .loading import load, resolve_checkpoint_dir
from .locks import folder_lock
from .notes import collecting
from .plugins import describe_plugins, get_registry
from .pretrained import resolve_model
from .run_config import LOSSES, SCHEDULES, TrainConfig, read_run_config, training_record
from .text import printable
from .validate import parse_json

DEBUG_ENV = "AEKIT_DEBUG"


class AekitGroup(click.Group):
    """Looks commands up in the registry and turns every error into one line (unless --debug)."""

    def list_commands(self, ctx):
        return get_registry().names("command")

    def get_command(self, ctx, name):
        registry = get_registry()
        return registry.get("command", name) if name in registry.names("command") else None

    def invoke(self, ctx):
        # notes on inputs used only in part (an animated GIF's first frame) are listed once, after a command that worked
        with collecting() as notes:
            result = self._invoke(ctx)
        for line in notes.lines():  # escaped by Notes.lines
            click.echo(line, err=True)
        return result

    def _invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.exceptions.ClickException as exc:
            # a usage error may quote a file name: click prints it, escaped like every other error line
            if isinstance(exc.message, str):
                exc.message = printable(exc.message)
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except BrokenPipeError:  # `aekit plugins | head`: click exits quietly (status 1), no "Error: Broken pipe"
            raise
        except Exception as exc:
            if (ctx.obj or {}).get("debug") or os.environ.get(DEBUG_ENV):
                traceback.print_exc()
            else:
                click.echo(printable(_error_line(exc)), err=True)  # a file name in it must not forge lines or escapes
            ctx.exit(1)


def _error_line(exc: Exception) -> str:
    """The one ``Error:`` line for an exception a command raised (before escaping)."""
    if isinstance(exc, AekitError):
        return f"Error: {exc}"
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return f"Error: {where}{exc.strerror or exc}"
    return f"Error: {type(exc).__name__}: {first_line(exc)} (run with --debug for the traceback)"


@click.group(cls=AekitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aekit")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx, debug):
    """aekit: train residual autoencoders for 64x64 faces and use their 128-d latents.

    \b
    Example:
      aekit train --data synthetic --epochs 3 --out runs/demo
      aekit info runs/demo
    """
    ctx.ensure_object(dict)["debug"] = debug
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="surrogateescape")  # file names that are not UTF-8 print as their own bytes


def main():
    """Console-script entry point."""
    cli(prog_name="aekit")


# --- core commands -----------------------------------------------------------------------------------


def _default_out() -> Path:
    return Path("runs") / datetime.now().strftime("run-%Y%m%d-%H%M%S")


# aekit train's options take their defaults from TrainConfig, the one place they are set (tests check every field)
_TRAIN = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}


@click.command()
@click.option("--data", default=_TRAIN["data"], show_default=True, metavar="SOURCE",
              help="celeba, synthetic[:N[:SEED]], hf:NAME[@SPLIT], a folder of images, or a .npy/.npz file; "
                   "append [START:STOP] to take a window, e.g. faces/[:9000].")
@click.option("--arch", default=_TRAIN["arch"], show_default=True, help="Registered model preset (see `aekit plugins`).")
@click.option("--model-config", "model_config", multiple=True, metavar="FIELD=VALUE",
              help="Override a preset's config field, e.g. --model-config latent_dim=64 --model-config widths=16,32,64,128.")
@click.option("--epochs", type=int, default=_TRAIN["epochs"], show_default=True)
@click.option("--batch-size", type=int, default=_TRAIN["batch_size"], show_default=True)
@click.option("--lr", type=float, default=_TRAIN["lr"], show_default=True, help="Peak learning rate; decays linearly to 0.")
@click.option("--weight-decay", type=float, default=_TRAIN["weight_decay"], show_default=True)
@click.option("--schedule", type=click.Choice(SCHEDULES), default=_TRAIN["schedule"], show_default=True,
              help="Learning rate over the run: linear decay from --lr to 0 (the article's), onecycle (warm up to --lr, "
                   "cosine down), or constant.")
@click.option("--flip", is_flag=True, default=_TRAIN["flip"], help="Random horizontal flips (data augmentation).")
@click.option("--shift", type=int, default=_TRAIN["shift"], show_default=True, metavar="PIXELS",
              help="Random translations of up to PIXELS in each direction, edges reflected (data augmentation).")
@click.option("--color-jitter", "color_jitter", type=float, default=_TRAIN["color_jitter"], show_default=True, metavar="F",
              help="Random brightness, contrast and saturation changes of up to F, e.g. 0.05 (data augmentation).")
@click.option("--noise", default=_TRAIN["noise"], metavar="SPEC",
              help="Train a denoiser: noisy input -> clean target, fresh noise every batch. SPEC is NAME:ARG with sigma on "
                   "the [0, 1] pixel scale, e.g. gaussian:0.1, saltpepper:0.05; A+B applies both, A|B picks one per "
                   "image. `aekit plugins` lists the noise models.")
@click.option("--objective", "objectives", multiple=True, default=_TRAIN["objectives"], metavar="NAME[:ARG][=WEIGHT]",
              help="Add a training objective to the reconstruction loss, times WEIGHT (default 1); repeatable. Built in: "
                   "vicreg[:latent|pooled], infonce[:TEMPERATURE], masked[:FRACTION], e.g. --objective vicreg=0.05. "
                   "`aekit plugins` lists the objectives.")
@click.option("--seed", type=int, default=_TRAIN["seed"], show_default=True)
@click.option("--skip", type=int, default=_TRAIN["skip"], help="Skip the first N images of the source.")
@click.option("--limit", type=int, default=_TRAIN["limit"], help="Use at most N images (the article uses 3000 of CelebA).")
@click.option("--files", type=click.Path(dir_okay=False), default=_TRAIN["files"], help="Text file of image names to use (one per line).")
@click.option("--val-fraction", type=float, default=_TRAIN["val_fraction"], show_default=True, help="Share of images held out for validation loss and PSNR.")
@click.option("--val-data", default=_TRAIN["val_data"], metavar="SOURCE", help="A separate held-out source, e.g. faces/[9000:] (a [START:STOP] window works on any source).")
@click.option("--sample-every", type=int, default=_TRAIN["sample_every"], show_default=True, help="Save a reconstruction/sample grid every N epochs (0: never).")
@click.option("--device", default=_TRAIN["device"], show_default=True, help="auto, cpu or cuda.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default=_TRAIN["precision"], show_default=True,
              help="auto: bf16 autocast on CUDA, fp32 on CPU. On a CPU with bf16 units (AVX-512 BF16, AMX), bf16 trains the article model about 1.2-1.3x as fast, the small preset slower.")
@click.option("--init", "init", metavar="MODEL", default=_TRAIN["init"], help="Start from this checkpoint's weights (fine-tuning).")
@click.option("--on-nan", "on_nan", type=click.Choice(["stop", "skip"]), default=_TRAIN["on_nan"], show_default=True,
              help="A non-finite loss: stop (keeping the last checkpoint), or skip that step and count it in metrics.jsonl.")
@click.option("--clip-grad", "clip_grad", type=float, default=_TRAIN["clip_grad"], show_default=True, metavar="NORM",
              help="Clip the gradients' total norm to NORM before each step (0: off). Rate-distortion codecs need it "
                   "(CompressAI clips at 1.0): without it a GDN codec can diverge at a high learning rate.")
@click.option("--loss", type=click.Choice(LOSSES), default=_TRAIN["loss"], show_default=True,
              help="mse: mean squared error over the batch (the article's); psnr: the mean of each image's log MSE, so "
                   "every image's relative error counts alike (denoisers trained on a mix of noise levels).")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run folder (default: runs/run-DATE-TIME).")
@click.option("--resume", type=click.Path(file_okay=False), default=None, help="Continue a stopped run in this folder with its own settings.")
@click.option("--push-to-hub", "push_to_hub", metavar="REPO", default=None, help="Upload the final model to this hub repo (opt-in).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.pass_context
def train(ctx, resume, out, push_to_hub, quiet, **settings):
    """Train an autoencoder and write a checkpoint folder.

    \b
    Examples:
      aekit train --data synthetic --epochs 5 --out runs/synth
      aekit train --data ../faces/ --val-fraction 0.1 --epochs 20
      aekit train --data celeba --limit 3000 --epochs 100      # the article's run
      aekit train --resume runs/synth                          # after Ctrl-C or a crash
      aekit train --init runs/synth --noise gaussian:0.1 --epochs 3 --out runs/denoiser
      aekit train --data synthetic --objective vicreg=0.05 --objective masked:0.6=0.5 --out runs/ssl
    """
    from .train import Trainer  # deferred: the trainer is heavy, and `aekit embed` never enters it (tests/test_embed.py)

    if resume:
        explicit = [k for k in settings if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE and k != "device"]
        if explicit or out:
            names = ", ".join("--" + k.replace("_", "-") for k in explicit + (["out"] if out else []))
            raise click.UsageError(f"--resume continues a run with its own settings; drop {names}")
        config, out = read_run_config(resume), Path(resume)
        if ctx.get_parameter_source("device") == click.core.ParameterSource.COMMANDLINE:
            config.device = settings["device"]
    else:
        settings["model_config"] = _parse_fields(settings["model_config"])
        config = TrainConfig(**settings)
        out = Path(out) if out else _default_out()
        _check_run_folder(out, config)
    log = (lambda m: click.echo(m, err=True))
    # One process at a time writes a run folder: the check for an earlier run and the whole run happen
    # under its lock (torchrun's other processes write nothing there)
    rank, _ = distributed_context()
    with folder_lock(out, "run folder") if rank == 0 else contextlib.nullcontext():
        if not resume and (out / "training_state.safetensors").exists():
            raise click.UsageError(f"{out} already holds a run; continue it with --resume {out} or pick another --out")
        trainer = Trainer(config, out, progress=not quiet, log=log)
        if trainer.rank == 0:
            processes = f" x {trainer.world_size} processes" if trainer.world_size > 1 else ""
            click.echo(f"training {config.arch} on {config.data} for {config.epochs} epochs on {trainer.device}"
                       f"{processes} ({trainer.precision}) -> {out}", err=True)
        model = trainer.run(resume=bool(resume))
    if trainer.rank != 0:
        return
    click.echo(f"saved {out}")
    if push_to_hub:
        url = model.push_to_hub(push_to_hub)
        click.echo(f"pushed to {url}")


def _check_run_folder(out: Path, config) -> None:
    """A run folder must be loadable later, not overwrite the --init checkpoint, nor sit in its data folder."""
    target = out.resolve()
    try:
        str(target).encode("utf-8")
    except UnicodeEncodeError:
        raise click.BadParameter(f"{out}: the run folder's path must be valid UTF-8 (safetensors cannot open "
                                 "other paths)", param_hint="--out") from None
    if config.init and Path(config.init).is_dir() and Path(config.init).resolve() == target:
        raise click.BadParameter(f"{out} is the --init checkpoint; training would overwrite it", param_hint="--out")
    for spec in (config.data, config.val_data):
        folder = Path(split_slice(spec)[0]) if spec else None
        if folder is not None and folder.is_dir() and (target == folder.resolve() or folder.resolve() in target.parents):
            raise click.BadParameter(f"{out} is inside the data folder {folder}; its sample images would become "
                                     "training data", param_hint="--out")
    check_output_folder(out)  # a file in its path: named, rather than "run.json: Not a directory"
    check_writable(out / "run.json")


def _parse_fields(items) -> dict:
    """FIELD=VALUE pairs; values are ints, floats, true/false, or comma-separated tuples of them."""
    fields = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected FIELD=VALUE", param_hint="--model-config")
        parts = [_number(v) for v in value.split(",")]
        fields[key.strip()] = tuple(parts) if "," in value else parts[0]
    return fields


def _number(text: str):
    if text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    raise click.BadParameter(f"{text!r} is not a number (or true/false)", param_hint="--model-config")


@click.command()
@click.argument("model_path", metavar="[MODEL]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(model_path, as_json):
    """Show a checkpoint's architecture, parameter counts, training data and metrics.

    \b
    MODEL is a checkpoint folder, a pretrained model's name (`aekit models`), a hub id or `latest`;
    a name means the pretrained model even beside a folder of that name (write the folder ./NAME).

    \b
    Examples:
      aekit info runs/synth
      aekit info faces-64
    """
    choice = resolve_model(model_path, "codec")
    if not model_path:
        click.echo(choice.describe(), err=True)
    if choice.note:
        click.echo(choice.note, err=True)
    directory = resolve_checkpoint_dir(choice.spec)
    meta = read_config(directory)
    load(directory)  # the same checks as every command that uses the model: weights, shapes, architecture
    metrics_path = Path(directory) / "metrics.jsonl"
    metrics = []
    if metrics_path.is_file():
        text = metrics_path.read_text(encoding="utf-8", errors="replace")
        metrics = [parse_json(line, f"{metrics_path}, line {number}", allow_nan=True, hint="fix or delete that line")
                   for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if as_json:
        click.echo(json.dumps({"path": str(directory), **meta, "metrics": metrics}, indent=2))
        return
    training = meta.get("training") or {}
    params = meta.get("parameters") or {}
    lines = [
        f"model:        {directory}",
        f"architecture: {meta['architecture']} (aekit {meta.get('aekit_version', '?')})",
        "config:       " + ", ".join(f"{k}={v}" for k, v in meta["config"].items()),
    ]
    if params:
        lines.append("parameters:   " + ", ".join(f"{part} {params[part]:,}" for part in ("encoder", "decoder", "total")
                                                  if isinstance(params.get(part), int)))
    if training:
        record = training_record(training, require_data=False)  # the recorded settings, every layout aekit wrote
        settings = record.settings
        lines.append(f"trained on:   {record.data} ({training.get('images')} images, {training.get('skipped', 0)} skipped)")
        lines.append(f"training:     {training.get('epochs_done')}/{training.get('epochs')} epochs, batch {settings.get('batch_size')}, "
                     f"lr {settings.get('lr')}, {training.get('device')} {training.get('precision')}, {training.get('elapsed_s')} s")
        if record.noise:
            lines.append(f"denoiser:     trained on noisy inputs: {record.noise}")
        if record.objectives:
            lines.append(f"objectives:   reconstruction + {', '.join(record.objectives)}")
        for key, value in (training.get("final") or {}).items():
            lines.append(f"  {key + ':':<14}{value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
        for key, value in training.items():
            if key not in ("data", "images", "skipped", "epochs_done", "epochs", "batch_in_epoch", "elapsed_s",
                           "device", "precision", "settings", "final", "noise"):
                lines.append(f"{key + ':':<14}{value}")
    if metrics:
        lines.append("epoch  loss      val_loss  val_psnr  img/s")
        for row in metrics[-10:]:
            lines.append(f"{row['epoch']:>5}  {row['loss']:<8.4f}  {row.get('val_loss', float('nan')):<8.4f}  "
                         f"{row.get('val_psnr', float('nan')):<8.2f}  {row.get('images_per_s', 0):.0f}")
    # config.json's strings and the folder's name are anyone's: one line each, no terminal escapes
    click.echo("\n".join(printable(line) for line in lines))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json):
    """List loaded plugins, their versions and what each registered.

    Set AEKIT_LOAD_PLUGINS=name1,name2 to load only those plugins.

    \b
    Example:
      aekit plugins --json
    """
    rows = describe_plugins()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        status = f"FAILED: {row['error']}" if row["error"] else ""
        dist = f"; pip: {row['distribution']}" if row.get("distribution") else ""
        click.echo(f"{row['name']} {row['version'] or ''}  ({row['module']}{dist}) {status}".rstrip())
        for kind, names in row["registered"].items():
            click.echo(f"  {kind}: {', '.join(names)}")
        if row["requires"]:
            click.echo(f"  uses the plugin(s): {', '.join(row['requires'])}")


CORE_COMMANDS = [train, info, plugins]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
