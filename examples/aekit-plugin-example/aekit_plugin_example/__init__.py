"""An example third-party aekit plugin: one command, one noise model, one latent sampler, a training objective and a
part of `aekit demo`."""

import click
import numpy as np

import aekit
from aekit.command_tools import finish_skipped, load_model_arg, model_option
from aekit.objectives import Objective, embedding
from aekit.text import tsv_line


@click.command("latent-stats")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@model_option
def latent_stats(inputs, model_path):
    """Print the norm and range of each image's latent.

    \b
    Example:
      aekit latent-stats faces/ --model runs/synth
    """
    from aekit.data import iter_batches
    from aekit.inputs import open_inputs

    model = load_model_arg(model_path)
    skipped, done = [], 0
    for batch in iter_batches(open_inputs(inputs), model.config.image_size, 64, skipped, progress=False):
        for name, z in zip(batch.names, model.encode(batch.images).numpy()):
            # tsv_line escapes a file name holding a tab or a newline, so each image stays one line of four fields
            click.echo(tsv_line([name, f"norm {np.linalg.norm(z):.3f}", f"min {z.min():.3f}", f"max {z.max():.3f}"]))
            done += 1
    finish_skipped(skipped, done)  # lists what was skipped; fails when nothing could be read


@aekit.hookimpl
def register_commands(register):
    register(latent_stats)


def make_poisson_noise(argument: str = "30"):
    """poisson:PEAK -> a function adding photon noise to float images in [0, 1]."""
    peak = float(argument or 30)
    if peak <= 0:
        raise aekit.AekitError(f"poisson:{argument}: PEAK must be positive")

    def add_noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.clip(rng.poisson(np.clip(images, 0, 1) * peak) / peak, 0, 1).astype(np.float32)

    return add_noise


@aekit.hookimpl
def register_noise_models(register):
    register("poisson", make_poisson_noise, help="photon noise; argument: photons at full brightness (default 30)")


class LatentL2(Objective):
    """`aekit train --objective latent-l2=WEIGHT`: weight decay on the latents, the mean of their squared norms
    (keeps the latent cloud near the origin, where samplers draw)."""

    def loss(self, model, x, rng):
        return embedding(model, x).pow(2).sum(1).mean()


def make_latent_l2(argument, model):
    if argument:
        raise ValueError(f"latent-l2 takes no argument (got {argument!r}); give its weight as latent-l2=WEIGHT")
    return LatentL2()


@aekit.hookimpl
def register_objectives(register):
    register("latent-l2", make_latent_l2, help="the latents' mean squared norm (weight decay on the latent)")


class BoxSampler:
    """Uniform latents inside the per-dimension [min, max] box of the fitted latents."""

    needs_fit = True

    def fit(self, latents):
        latents = np.asarray(latents, dtype=np.float32)
        self.low, self.high = latents.min(axis=0), latents.max(axis=0)
        return self

    def sample(self, n, seed=None):
        rng = np.random.default_rng(seed)
        return rng.uniform(self.low, self.high, size=(n, len(self.low))).astype(np.float32)

    def state(self):
        return {"low": self.low, "high": self.high}, {}

    @classmethod
    def from_state(cls, arrays, meta):
        sampler = cls()
        sampler.low, sampler.high = np.asarray(arrays["low"]), np.asarray(arrays["high"])
        return sampler


@aekit.hookimpl
def register_samplers(register):
    register("box", BoxSampler, help="uniform inside the training latents' per-dimension range")


def example_demo(ctx):
    """This plugin's part of `aekit demo`: faces from the `box` sampler and the latents' norms."""
    from aekit.demo import DemoSection

    train = ctx.encode(ctx.train_images[:512])
    held_out = ctx.encode(ctx.images)
    sampler = BoxSampler().fit(train)
    faces = ctx.decode(sampler.sample(8, seed=ctx.seed))
    picture = ctx.save_grid("box_samples.png", [faces], ["box"], title="the example plugin's box sampler")
    norms = np.linalg.norm(held_out, axis=1)
    return DemoSection(
        title="A third-party plugin: aekit-plugin-example",
        text="This section comes from a separately installed package (examples/aekit-plugin-example) through the "
             "`register_demos` hook, exactly as the built-in sections do: any plugin can add its part to "
             "`aekit demo`. Its `box` sampler draws each latent dimension uniformly inside the training range; "
             "its command `aekit latent-stats` prints each image's latent norm and range.",
        images=[(picture, "8 faces from the box sampler: the box is much larger than where latents really lie")],
        tables=[("Held-out latent norms", ["faces", "mean", "min", "max"],
                 [[len(norms), f"{norms.mean():.2f}", f"{norms.min():.2f}", f"{norms.max():.2f}"]])],
    )


@aekit.hookimpl
def register_demos(register):
    register("example", example_demo, help="the example plugin's box sampler and latent norms", order=900)
