"""An aekit encoder inside a scikit-learn Pipeline: predict a face attribute from the autoencoder's features.

    python examples/embed_pipeline.py --model runs/synth                       # a model from `aekit train`
    python examples/embed_pipeline.py --model runs/synth --attribute Smiling --images 400

The images are the built-in synthetic faces (offline), as a uint8 (N, 64, 64, 3) array; the
pipeline is AutoencoderEmbedder -> StandardScaler -> LogisticRegression, scored with 5-fold
cross-validation beside a majority-class baseline.
"""

import argparse

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from aekit.data import prepare
from aekit.synthetic import ATTRIBUTE_NAMES
from aekit_embed import AutoencoderEmbedder

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", required=True, help="checkpoint folder or hub id (e.g. runs/synth)")
parser.add_argument("--attribute", default="Eyeglasses", choices=ATTRIBUTE_NAMES)
parser.add_argument("--images", type=int, default=600, help="how many synthetic faces to use")
args = parser.parse_args()

# synthetic:N:SEED with seed 7: faces a model trained on `--data synthetic` (seed 0) has not seen
data = prepare(f"synthetic:{args.images}:7", image_size=64, progress=False)
images = np.ascontiguousarray(data.images.transpose(0, 2, 3, 1))  # (N, 64, 64, 3) uint8; resized to the model's size
y = data.attributes[args.attribute]

pipeline = make_pipeline(AutoencoderEmbedder(model=args.model), StandardScaler(), LogisticRegression(max_iter=5000))
scores = cross_val_score(pipeline, images, y, cv=5)
baseline = cross_val_score(DummyClassifier(strategy="most_frequent"), images.reshape(len(images), -1), y, cv=5)
print(f"{args.attribute}: accuracy {scores.mean():.3f} ± {scores.std():.3f} from the "
      f"{pipeline[0].features} features "
      f"(majority class: {baseline.mean():.3f}) on {len(y)} faces, 5-fold cross-validation")
