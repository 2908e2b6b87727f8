#!/usr/bin/env bash
# How aekit's bundled pretrained models were made: train on celeba-10k's training faces (1-9000)
# only, package the weights as float16 into plugins/aekit_pretrained/, fit the codec's priors on the
# packaged weights, and evaluate both on the 1,000 test faces (9001-10000) that neither ever saw.
#
#   bash examples/train_pretrained.sh [DATA_DIR] [RUNS_DIR]
#
# On 2 CPU cores the two trainings take about 75 and 40 minutes when each has the machine to itself.
set -euo pipefail
DATA="${1:-../shared/data/celeba-10k}"
RUNS="${2:-runs}"
PKG=plugins/aekit_pretrained

# the codec: the quality recipe (examples/recipe_celeba10k.sh) without validation on the test faces
aekit train --data "$DATA/images[:9000]" --arch improved --epochs 14 --batch-size 32 --lr 2e-3 \
    --schedule onecycle --flip --shift 1 --color-jitter 0.05 --out "$RUNS/faces-64"
# the blind denoiser: gaussian sigma 0.02-0.25 (half the batches), salt & pepper 2-15 %, speckle 0.05-0.3
aekit train --data "$DATA/images[:9000]" --arch unet \
    --noise "gaussian:0.02-0.25|gaussian:0.02-0.25|saltpepper:0.02-0.15|speckle:0.05-0.3" \
    --epochs 6 --batch-size 32 --lr 2e-3 --schedule onecycle --flip --out "$RUNS/faces-64-denoise"

aekit models package "$RUNS/faces-64" --name faces-64 --task codec --out "$PKG/faces-64" \
    --description "faces codec and feature extractor: 64x64 face -> 128-d latent -> face (improved preset)"
aekit fit-prior --model "$PKG/faces-64" --data "$DATA/images[:9000]" --limit 9000
aekit models package "$RUNS/faces-64-denoise" --name faces-64-denoise --task denoise --out "$PKG/faces-64-denoise" \
    --description "blind face denoiser: gaussian, salt & pepper and speckle noise, photos of any size (unet preset)"

aekit eval --model "$PKG/faces-64" --data "$DATA/images[9000:]" --train-data "$DATA/images[:9000]" \
    --baselines --labels "$DATA/attributes.csv" --out "$RUNS/faces-64-report"
aekit eval --model "$PKG/faces-64-denoise" --data "$DATA/images[9000:]" --train-data "$DATA/images[:9000]" \
    --noise gaussian:0.05 --noise gaussian:0.1 --noise gaussian:0.2 --noise saltpepper:0.1 \
    --out "$RUNS/faces-64-denoise-report"
# then write each folder's README.md (the model card) and refresh the sums in pretrained.json:
#   python -c "from aekit.pretrained import record_in_manifest as r; r('$PKG/faces-64', 'faces-64', ['codec'])"
