"""The core's own contributions, registered through the same hooks as any plugin."""

from . import cli
from .codec import CODEC, FaceCodec
from .demo import demo_command
from .drunet import DRUNET, DRUNetDenoiser
from .feature_sets import BUILT_IN
from .hookspecs import hookimpl
from .model import ARTICLE, SMALL, Autoencoder
from .models_command import models_command
from .objectives import BUILT_IN as BUILT_IN_OBJECTIVES
from .resnet import IMPROVED, UNET, ResNetAutoencoder


@hookimpl
def register_models(register):
    register("article", Autoencoder, ARTICLE, help="the article's residual autoencoder, 64x64 -> 128-d (default)")
    register("small", Autoencoder, SMALL, help="the article's design at a quarter of the width, 1 conv per half: ~7x faster on a CPU, for demos")
    register("improved", ResNetAutoencoder, IMPROVED,
             help="same 128-d latent, starts at PCA-128, exact 64x64 decoder (no 79->64 crop) that refines the PCA image; the recipe's model and faces-64's")
    register("unet", ResNetAutoencoder, UNET,
             help="the improved design with U-Net skip connections and a residual output: a denoiser, not a codec")
    register("drunet", DRUNetDenoiser, DRUNET,
             help="a DRUNet-style residual U-Net told the noise level (estimated, or --sigma): a denoiser, not a codec (faces-64-denoise)")
    register("codec", FaceCodec, CODEC,
             help="a face codec trained for rate and distortion (GDN, 4x4xM latent, 6 qualities, learned priors): "
                  "entropy-coded bitstreams for `aekit compress`")


@hookimpl
def register_feature_sets(register):
    for name, (function, help_text) in BUILT_IN.items():
        register(name, function, help=help_text)


@hookimpl
def register_objectives(register):
    for name, (factory, help_text) in BUILT_IN_OBJECTIVES.items():
        register(name, factory, help=help_text)


@hookimpl
def register_commands(register):
    for command in cli.CORE_COMMANDS:
        register(command)
    register(demo_command)
    register(models_command)
