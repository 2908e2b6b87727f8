"""aekit: residual convolutional autoencoders for 64x64 faces, with plugins for everything they are good for."""

__version__ = "0.1.0"

from .errors import AekitError, CheckpointError, DataSourceError, ImageReadError, NoiseSpecError, PluginError, RegistryError, TrainingError  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .checkpoint import create_model, list_models, load, model_fingerprint  # noqa: E402
from .model import Autoencoder, AutoencoderConfig  # noqa: E402
from .features import Features, load_features  # noqa: E402  (the `aekit embed` .npz; numpy only)
from . import pretrained  # noqa: E402  (pretrained models and the default-model rules; no torch at import)

__all__ = [
    "AekitError",
    "Autoencoder",
    "AutoencoderConfig",
    "CheckpointError",
    "DataSourceError",
    "Features",
    "ImageReadError",
    "NoiseSpecError",
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
