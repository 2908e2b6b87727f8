"""aekit: residual convolutional autoencoders for 64x64 faces, with plugins for everything they are good for."""

from ._version import __version__
from .errors import AekitError, CheckpointError, DataSourceError, ImageReadError, NoiseSpecError, ObjectiveSpecError, PluginError, RegistryError, TrainingError
from .hookspecs import hookimpl
from . import plugins  # noqa: F401  (installs the loader behind aekit.registry.get_registry: plugins load on first use)
from .checkpoint import model_fingerprint
from .factory import create_model, list_models
from .loading import load
from .model import Autoencoder, AutoencoderConfig
from .features import Features, load_features  # the `aekit embed` .npz
from . import pretrained  # pretrained models and the default-model rules

__all__ = [
    "AekitError",
    "Autoencoder",
    "AutoencoderConfig",
    "CheckpointError",
    "DataSourceError",
    "Features",
    "ImageReadError",
    "NoiseSpecError",
    "ObjectiveSpecError",
    "PluginError",
    "RegistryError",
    "TrainingError",
    "__version__",
    "create_model",
    "hookimpl",
    "list_models",
    "load",
    "load_features",
    "model_fingerprint",
    "pretrained",
]
