"""The core's own contributions, registered through the same hooks as any plugin."""

from .hookspecs import hookimpl


@hookimpl
def register_models(register):
    from .model import ARTICLE, SMALL, Autoencoder
    from .resnet import IMPROVED, UNET, ResNetAutoencoder

    register("article", Autoencoder, ARTICLE, help="the article's residual autoencoder, 64x64 -> 128-d (default)")
    register("small", Autoencoder, SMALL, help="the article's design at a quarter of the width, 1 conv per half: ~7x faster on a CPU, for demos")
    register("improved", ResNetAutoencoder, IMPROVED,
             help="same 128-d latent, starts at PCA-128, exact 64x64 decoder (no 79->64 crop) that refines the PCA image; the recipe's model and faces-64's")
    register("unet", ResNetAutoencoder, UNET,
             help="the improved design with U-Net skip connections and a residual output: a denoiser, not a codec (faces-64-denoise)")


@hookimpl
def register_feature_sets(register):
    from .feature_sets import BUILT_IN

    for name, (function, help_text) in BUILT_IN.items():
        register(name, function, help=help_text)


@hookimpl
def register_commands(register):
    from . import cli

    for command in cli.CORE_COMMANDS:
        register(command)
    from .demo import demo_command
    from .models_command import models_command

    register(demo_command)
    register(models_command)
