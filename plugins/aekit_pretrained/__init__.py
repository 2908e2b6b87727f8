"""aekit's own pretrained models, registered through the same hook a third-party model package uses.

``faces-64`` is the article's autoencoder grown (the ``improved`` preset: latents, generation, editing),
``faces-64-codec`` the face codec of ``aekit compress`` (the ``codec`` preset: entropy-coded bitstreams),
``faces-64-denoise`` a denoiser told the noise level (the ``drunet`` preset) and ``faces-64-features`` a feature
extractor (faces-64's encoder trained on with VICReg); all were trained on celeba-10k's training faces only. Their folders
(weights, config, model card, priors) and SHA-256 sums are listed in ``pretrained.json`` beside this
file. CelebA is for non-commercial research; see each folder's README.md.
"""

from pathlib import Path

from aekit import hookimpl
from aekit.pretrained import MANIFEST_NAME, register_manifest

MANIFEST = Path(__file__).parent / MANIFEST_NAME


@hookimpl
def register_pretrained(register):
    register_manifest(register, MANIFEST)
