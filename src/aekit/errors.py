"""Exceptions aekit raises on bad input; the CLI prints them as one line."""


class AekitError(Exception):
    """Base class: a problem the user can fix, reported without a traceback on the CLI."""


class RegistryError(AekitError):
    """A registry name is unknown or already taken."""


class PluginError(AekitError):
    """A plugin failed to load or to register."""


class DataSourceError(AekitError):
    """A data source could not be opened or read."""


class ImageReadError(DataSourceError):
    """One image file could not be decoded."""


class CheckpointError(AekitError):
    """A checkpoint is missing, unsafe or does not match its config."""


class TrainingError(AekitError):
    """Training cannot start or continue (bad settings, non-finite loss)."""


class NoiseSpecError(AekitError, ValueError):
    """A --noise spec that names no registered noise model or has a bad argument."""


class ObjectiveSpecError(TrainingError, ValueError):
    """An --objective value that names no registered training objective, or has a bad weight or argument."""


class DeviceError(TrainingError, ValueError):
    """A --device / device= that names no device, or CUDA asked for where there is none."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): what one-line errors print."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


ENCODER_ONLY_MESSAGE = ("this model is an encoder alone (a feature extractor, shipped without its decoder): it embeds "
                        "faces but cannot decode, reconstruct or denoise them; use a codec such as faces-64")


class NoDecoderError(AekitError, AttributeError):
    """A decoder asked of an encoder-only model: a one-line error on the CLI, and still an AttributeError
    (``hasattr(model.decoder, "head")`` is False)."""
