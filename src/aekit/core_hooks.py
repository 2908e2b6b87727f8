"""The core's own contributions, registered through the same hooks as any plugin."""

from .hookspecs import hookimpl


@hookimpl
def register_models(register):
    from .model import ARTICLE, SMALL, Autoencoder

    register("article", Autoencoder, ARTICLE, help="the article's residual autoencoder, 64x64 -> 128-d (default)")
    register("small", Autoencoder, SMALL, help="the article's design at a quarter of the width, 1 conv per half: ~7x faster on a CPU, for demos")


@hookimpl
def register_commands(register):
    from . import cli

    for command in cli.CORE_COMMANDS:
        register(command)
