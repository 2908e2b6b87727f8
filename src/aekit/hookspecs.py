"""The hooks a plugin can implement: each receives a ``register`` function for one kind of thing.

A plugin is a module (or package) named in the ``aekit.plugins`` entry-point group::

    import aekit

    @aekit.hookimpl
    def register_noise_models(register):
        register("poisson", make_poisson_noise, help="Poisson noise; argument: photons per pixel")

Names are unique across all plugins; registering a taken name raises ``RegistryError``.
"""

import pluggy

hookspec = pluggy.HookspecMarker("aekit")
hookimpl = pluggy.HookimplMarker("aekit")


@hookspec
def register_models(register):
    """Register model presets: ``register(name, model_class, config, help="")``.

    ``model_class(config)`` builds the ``torch.nn.Module``; ``config`` is a dataclass instance whose
    fields are saved to ``config.json`` and overridable by ``aekit.create_model(name, **fields)``.
    """


@hookspec
def register_data_sources(register):
    """Register data sources for ``--data``: ``register(name, open_source, help="")``.

    ``open_source(argument)`` gets the text after ``NAME:`` in ``--data NAME:ARG`` (or ``""``) and
    returns an ``aekit.data.ImageSource``. A source may also claim paths: pass ``claims=callable``
    taking the ``--data`` text and returning True when the source should handle it.
    """


@hookspec
def register_noise_models(register):
    """Register noise models for ``--noise NAME:ARG``: ``register(name, make_noise, help="")``.

    ``make_noise(argument)`` gets the text after ``NAME:`` and returns ``add_noise(images, rng)``,
    which maps float images in [0, 1] (N, H, W, 3) and a ``numpy.random.Generator`` to noisy images.
    """


@hookspec
def register_samplers(register):
    """Register latent samplers for generation: ``register(name, sampler_class, help="")``."""


@hookspec
def register_feature_sets(register):
    """Register a feature set for ``model.features(kind=...)`` and ``aekit embed --features``:
    ``register(name, function, help="")``, where ``function(maps, latent)`` gets the encoder's feature
    map after each stage (full size first) and the latent, and returns an (N, D) tensor."""


@hookspec
def register_aligners(register):
    """Register a face aligner for ``--align``: ``register(name, aligner, help="")``.

    ``aligner`` is an ``aekit.alignment.FaceAligner``: ``find(image)`` (the faces of an RGB uint8 photo,
    largest first), ``framed_face(image)`` (the face when the image is already framed like the models'
    training faces, else None), ``crop(image, face, size)`` (a model input) and ``put_back(image, face,
    change)`` (an edit's change carried back into the photo under a soft mask). The built-in
    ``aekit_faces`` registers ``yunet``.
    """


@hookspec
def register_objectives(register):
    """Register training objectives for ``aekit train --objective NAME[:ARG][=WEIGHT]``: ``register(name, factory, help="")``.

    ``factory(argument, model)`` gets the text after ``NAME:`` (or ``""``) and the model about to be trained, and
    returns an ``aekit.objectives.Objective``: a ``torch.nn.Module`` (it may own parameters, e.g. a projector)
    whose ``loss(model, x, rng)`` maps the clean batch ``x`` (N, 3, S, S) in [-1, 1] and a seeded
    ``numpy.random.Generator`` (for its own augmentations: ``aekit.objectives.two_views``) to a scalar tensor,
    added to the reconstruction loss times WEIGHT. Its parameters train with the model and are saved in the
    training state, not in ``model.safetensors``. A bad argument raises ``ValueError`` (shown as one line).
    """


@hookspec
def register_commands(register):
    """Register CLI commands: ``register(click_command)``; the command's name is its CLI name."""


@hookspec
def register_demos(register):
    """Register a part of `aekit demo`: ``register(name, run_demo, help="", order=100)``.

    ``run_demo(ctx)`` gets an ``aekit.demo.DemoContext`` (``ctx.out``: this part's own folder; the
    trained ``ctx.model`` and ``ctx.model_dir``; ``ctx.denoiser``/``ctx.denoiser_dir`` or None;
    held-out uint8 ``ctx.images`` (N, 3, S, S) with ``ctx.labels`` {attribute: 0/1 array}; the
    training ``ctx.train_images``/``ctx.train_labels``; ``ctx.seed``; ``ctx.quick`` for tiny test
    sizes) and returns an ``aekit.demo.DemoSection`` (title, text, images as (path relative to
    ``ctx.out``, caption), tables as (caption, header, rows)). Parts run in ``order`` (then name);
    one that raises is shown as a failed section and the others still run.
    """


@hookspec
def register_pretrained(register):
    """Register pretrained models shipped in the package: ``register(name, directory, tasks, help="", metrics=None, sha256=None)``.

    ``directory`` holds ``model.safetensors`` + ``config.json`` (and a ``README.md`` model card);
    ``tasks`` names what the model is a default for (``"codec"``, ``"denoise"``); ``metrics`` are
    headline numbers for ``aekit models``; ``sha256`` maps each file name to its digest, checked at
    load. ``aekit.pretrained.register_manifest(register, path)`` registers a ``pretrained.json``.
    """


@hookspec
def on_train_end(model, run_dir, train_images):
    """Called after `aekit train` saved its final checkpoint (e.g. to fit a latent prior beside it).

    ``train_images`` is the uint8 (N, 3, S, S) training set; ``run_dir`` the checkpoint folder. A
    failure here is reported as a warning and never loses the trained model.
    """
