"""``aekit serve``: the explorer, a local web page over a model's latent space.

::

    pip install 'aekit[serve]'            # starlette, uvicorn, python-multipart
    aekit serve                           # faces-64 (+ faces-64-denoise) on http://127.0.0.1:7860/
    aekit serve --model runs/celeba --features faces.npz --gallery faces/

Upload a photo or pick a face: its reconstruction, sliders for the attribute directions and principal
axes (``aekit directions fit``, plugin ``edit``; an upload's largest face is aligned first, ``--align``,
and its edits are shown in the photo itself, as ``aekit edit`` writes them), noise and the denoiser's answer, samples of the fitted
prior (plugin ``generate``), interpolation between two faces, and its nearest faces in a features file
(plugin ``embed``). The page is static HTML, CSS and plain JavaScript in ``static/``: it fetches
nothing from outside the machine (its Content-Security-Policy allows only the server itself).

Modules: ``explorer`` (``Explorer``: the model work, testable without HTTP), ``app`` (``build_app``:
the Starlette app and its JSON endpoints, listed in its docstring) and ``command`` (``aekit serve``).
Neither starlette nor uvicorn is imported until the command runs, so the plugin loads without them.
"""

from __future__ import annotations

from aekit import hookimpl

# the plugins whose modules this one imports (aekit refuses to load it without them)
AEKIT_REQUIRES = ("edit", "generate", "embed")  # directions; priors; the face index and its images


@hookimpl
def register_commands(register):
    from .command import serve

    register(serve)


def build_app(*args, **kwargs):
    """The explorer's Starlette app (``aekit_serve.app.build_app``; needs ``pip install 'aekit[serve]'``)."""
    from .app import build_app as build

    return build(*args, **kwargs)


__all__ = ["build_app"]
