"""``aekit models``: the installed pretrained models, the user's default, and packaging a run to ship."""

from __future__ import annotations

import json

import click

from .pretrained import (TASKS, clear_default, package_model, pretrained_models, read_defaults, resolve_model, set_default,
                         shadowed_folder_note)
from .registry import get_registry
from .text import printable


def _metrics_text(metrics: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in metrics.items())


def _rows() -> list[dict]:
    chosen = {}
    for task in TASKS:
        try:
            chosen[task] = resolve_model(None, task).spec
        except Exception:  # no model for the task: nothing is marked
            chosen[task] = None
    rows = []
    for model in pretrained_models():
        rows.append({
            "name": model.name,
            "tasks": list(model.tasks),
            "default_for": [task for task in TASKS if chosen[task] == model.name],
            "size_bytes": model.size_bytes(),
            "help": model.help,
            "metrics": model.metrics,
            "path": str(model.directory),
            "plugin": model.plugin,
            "distribution": model.distribution,
        })
    return rows


@click.group("models", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def models_command(ctx, as_json):
    """List the installed pretrained models (what each does, its size and headline metrics).

    Commands use the pretrained model that fits them when no --model is given (the codec for
    embed, compress, generate ...; the denoiser for denoise) unless you chose a default with
    `aekit models default`. A package adds models with the register_pretrained hook.

    \b
    Examples:
      aekit models
      aekit models default runs/my-faces      # use my own model everywhere
      aekit models default faces-64-denoise --task denoise
      aekit models default --clear
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = _rows()
    if as_json:
        click.echo(json.dumps({"models": rows, "defaults": read_defaults()}, indent=2))
        return
    if not rows:
        click.echo("no pretrained models installed" + get_registry().missing_hint)
    for row in rows:
        mark = f"  [default for {', '.join(row['default_for'])}]" if row["default_for"] else ""
        click.echo(printable(f"{row['name']}{mark}"))  # a manifest's strings come from the package that ships it
        click.echo(printable(f"  {row['help']}"))
        click.echo(f"  tasks: {', '.join(row['tasks'])}; {row['size_bytes'] / 1e6:.1f} MB; from {row['distribution'] or row['plugin']}")
        if row["metrics"]:
            click.echo(printable(f"  {_metrics_text(row['metrics'])}"))
    for task in TASKS:
        try:
            click.echo(f"{task}: {resolve_model(None, task).describe()[len('Using model '):]}")
        except Exception as exc:
            click.echo(f"{task}: no model ({exc})")


@models_command.command("default")
@click.argument("model", metavar="[NAME_OR_DIR]", required=False)
@click.option("--task", type=click.Choice(sorted(TASKS)), default=None,
              help="Set the default for one task only (default: for every task).")
@click.option("--clear", is_flag=True, help="Forget the default (for --task only, when given).")
def default_command(model, task, clear):
    """Show or set the model commands use when no --model is given.

    NAME_OR_DIR is a pretrained model's name, a checkpoint folder, a hub id, or `latest` (whichever
    run `aekit train` finished last). Without it, shows the current choice for each task. A name
    means the pretrained model even beside a folder of that name (write the folder as ./NAME); a
    folder is stored as its absolute path, a hub id as hf:USER/REPO, so the current directory
    never changes what a default means.

    \b
    Examples:
      aekit models default runs/my-faces
      aekit models default faces-64-denoise --task denoise
      aekit models default latest
      aekit models default --clear
    """
    if clear:
        if model:
            raise click.UsageError("give either NAME_OR_DIR or --clear, not both")
        removed = clear_default(task)
        click.echo(("forgot the default" if removed else "no default was set") + (f" for {task}" if task else ""))
    elif model:
        value = set_default(model, task)
        click.echo(printable(f"default model{f' for {task}' if task else ''}: {value}"))
        if note := shadowed_folder_note(model):
            click.echo(note, err=True)
    for each in ([task] if task else TASKS):
        try:
            click.echo(f"{each}: {resolve_model(None, each).describe()[len('Using model '):]}")
        except Exception as exc:
            click.echo(f"{each}: no model ({exc})")


@models_command.command("package")
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path())
@click.option("--name", required=True, help="The model's name (what --model and aekit.load take).")
@click.option("--task", "tasks", multiple=True, type=click.Choice(sorted(TASKS)), required=True,
              help="What the model is a default for (repeat for several).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="The folder to write, inside your package; pretrained.json is written beside it.")
@click.option("--description", default="", help="One line for `aekit models`.")
@click.option("--metric", "metrics", multiple=True, metavar="NAME=VALUE", help="A headline metric (repeatable).")
@click.option("--dtype", type=click.Choice(["float16", "bfloat16", "float32"]), default="float16", show_default=True,
              help="Storage type of the shipped weights (they load as float32).")
@click.option("--encoder-only", is_flag=True,
              help="Ship the encoder alone: a feature extractor (--task features) at about half the size; it embeds "
                   "faces but cannot decode them.")
def package_command(run_dir, name, tasks, out_dir, description, metrics, dtype, encoder_only):
    """Write a trained run as a folder a package can ship, and record it in pretrained.json.

    Put a README.md model card and the files fitted on the packaged model (prior-*.safetensors from
    `aekit fit-prior --model OUT`, directions.safetensors from `aekit directions fit`) in OUT, then run `aekit models package ... --out OUT` again (or
    aekit.pretrained.record_in_manifest) to refresh the SHA-256 sums.

    \b
    Example:
      aekit models package runs/my-faces --name my-faces --task codec --out my_pkg/my-faces \\
          --description "a codec for my faces" --metric "PSNR dB=24.1"
      aekit models package runs/ssl --name my-features --task features --encoder-only --out my_pkg/my-features
    """
    parsed = {}
    for item in metrics:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE", param_hint="--metric")
        try:
            parsed[key.strip()] = float(value)
        except ValueError:
            parsed[key.strip()] = value.strip()
    entry = package_model(run_dir, out_dir, name, tasks, help=description, metrics=parsed or None, dtype=dtype,
                          encoder_only=encoder_only)
    click.echo(f"wrote {out_dir} ({', '.join(entry['sha256'])}) and its entry in pretrained.json")
