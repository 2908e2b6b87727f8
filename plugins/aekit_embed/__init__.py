"""Features for scikit-learn: ``aekit embed``, ``aekit classify``, ``aekit cluster`` and ``AutoencoderEmbedder``.

``aekit embed INPUT... --out feats.npz`` encodes images (files, folders, arrays or any ``--data``
source) to a features ``.npz``; its format is documented in ``aekit.features`` (``features``,
``paths``, ``files``, ``labels``, ``label_names``, ``model_id``, ``meta``). Read it with::

    from aekit_embed import load_features          # the same function as aekit.load_features
    feats = load_features("feats.npz")
    X, y = feats.X, feats.target("Male")

``AutoencoderEmbedder`` is the encoder as a scikit-learn transformer (imported lazily, so loading
the plugin does not import scikit-learn)::

    from aekit_embed import AutoencoderEmbedder
    pipe = make_pipeline(AutoencoderEmbedder(model="runs/synth"), StandardScaler(), LogisticRegression())

``aekit classify`` scores a linear probe on the features against PCA of the pixels, raw pixels and
the majority class; ``aekit cluster`` clusters them (methods in ``CLUSTER_METHODS``; add one with
``register_cluster_method``) and draws a contact sheet per cluster.
"""

from __future__ import annotations

from aekit import hookimpl
from aekit.features import FeatureFileError, Features, UnknownLabelError, load_features, save_features


@hookimpl
def register_commands(register):
    from . import commands

    register(commands.embed)
    register(commands.classify)
    register(commands.cluster)
    register(commands.similar)


_LAZY = {
    "AutoencoderEmbedder": ("sklearn", "AutoencoderEmbedder"),
    "EmbedderError": ("sklearn", "EmbedderError"),
    "CLUSTER_METHODS": ("cluster", "CLUSTER_METHODS"),
    "register_cluster_method": ("cluster", "register_cluster_method"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AutoencoderEmbedder", "CLUSTER_METHODS", "EmbedderError", "FeatureFileError", "Features", "UnknownLabelError",
           "load_features", "register_cluster_method", "save_features"]


# --- `aekit demo` ------------------------------------------------------------------------------------


@hookimpl
def register_demos(register):
    from . import demo  # light: numpy; its work imports what it needs

    register("embed", demo.run, help="a linear probe per attribute on the latents, and k-means clusters", order=30)
