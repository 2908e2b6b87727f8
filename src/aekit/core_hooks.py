"""The core's own contributions, registered through the same hooks as any plugin."""

from .hookspecs import hookimpl


@hookimpl
def register_models(register):
    from .model import ARTICLE, Autoencoder

    register("article", Autoencoder, ARTICLE, help="the article's residual autoencoder, 64x64 -> 128-d (default)")


@hookimpl
def register_commands(register):
    from . import cli

    for command in cli.CORE_COMMANDS:
        register(command)
