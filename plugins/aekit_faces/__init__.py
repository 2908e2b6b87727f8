"""Faces in photos: find each face and align it the way CelebA's aligned set is framed (``aekit faces``).

Every aekit model sees 64x64 resizes of CelebA's aligned 178x218 images (eyes level at nearly fixed
places). This plugin finds the faces in any photo with YuNet (OpenCV's ``FaceDetectorYN``; the 232 KB
model ships in the package, MIT, see ``yunet/README.md``), fits one similarity transform per face that
carries its five landmarks onto CelebA's landmark template (``faces.TEMPLATE``, measured on celeba-10k's
training faces by ``benchmarks/face_template.py``), and cuts the face out at CelebA's 178x218 framing,
from which ``aekit.images.resize_rgb`` makes the 64x64 model input exactly as for CelebA.

In Python::

    from aekit_faces import aligned_faces, detect_faces, align

    for face in detect_faces("group.jpg"):          # largest first; EXIF rotation applied
        print(face.box, face.score, face.landmarks)    # photo pixels
        crop = align("group.jpg", face, size=64)       # (64, 64, 3) uint8: a model's input
        back = face.inverse                            # (2, 3): frame pixels -> photo pixels
    crops = [a.image for a in aligned_faces("me.jpg", largest=True)]   # 178x218 frames

Modules: ``faces`` (detection, the transforms, alignment) and ``command`` (``aekit faces``); this
package holds the hook implementation and the public names.
"""

from __future__ import annotations

from aekit import hookimpl

from .faces import (FRAME, LANDMARK_NAMES, LANDMARK_WEIGHTS, TEMPLATE, AlignedFace, Face, FaceError, align,
                    aligned_faces, apply, as_rgb, celeba_transform, compose, detect_faces, fit_similarity, invert,
                    parse_size, select_faces, similarity, warp)

__all__ = ["FRAME", "LANDMARK_NAMES", "LANDMARK_WEIGHTS", "TEMPLATE", "AlignedFace", "Face", "FaceError", "align",
           "aligned_faces", "apply", "as_rgb", "celeba_transform", "compose", "detect_faces", "fit_similarity",
           "invert", "parse_size", "select_faces", "similarity", "warp"]


@hookimpl
def register_commands(register):
    from .command import faces_cmd

    register(faces_cmd)


@hookimpl
def register_aligners(register):
    from .aligner import YuNetAligner

    register("yunet", YuNetAligner(), help="YuNet's five landmarks onto CelebA's template (OpenCV, shipped)")
