#!/usr/bin/env bash
# How aekit's bundled pretrained models were made: train on celeba-10k's training faces (1-9000)
# only, package the weights as float16 into plugins/aekit_pretrained/, fit the codec's priors on the
# packaged weights, and evaluate them on the 1,000 test faces (9001-10000) that none ever saw.
#
#   bash examples/train_pretrained.sh [DATA_DIR] [RUNS_DIR]
#
# On 2 CPU cores the codec's training takes about 75 minutes, the feature extractor's 30 and the denoiser's
# stages about 5 hours.
set -euo pipefail
DATA="${1:-../shared/data/celeba-10k}"
RUNS="${2:-runs}"
PKG=plugins/aekit_pretrained

# the codec: the quality recipe (examples/recipe_celeba10k.sh) without validation on the test faces
aekit train --data "$DATA/images[:9000]" --arch improved --epochs 14 --batch-size 32 --lr 2e-3 \
    --schedule onecycle --flip --shift 1 --color-jitter 0.05 --out "$RUNS/faces-64"
# the denoiser (drunet, told the noise level), in four stages, each starting from the one before; the first
# three were stopped by hand (Ctrl-C) where the comment says, the last ran to its end. The noise mix: gaussian
# (half of it up to 0.12), a camera's Poisson-Gaussian noise with and without JPEG, salt & pepper.
MIX="gaussian:0.005-0.3|gaussian:0.005-0.12|gaussian:0.005-0.12|poisson-gaussian:0.001-0.03,0.002-0.03+jpeg:60-95|poisson-gaussian:0.001-0.03,0.002-0.03|saltpepper:0.02-0.15"
COMMON=(--arch drunet --noise "$MIX" --batch-size 32 --flip --val-fraction 0.02)
aekit train --data "$DATA/images[:9000]" "${COMMON[@]}" --epochs 30 --lr 5e-4 --schedule onecycle \
    --out "$RUNS/drunet-a"                                                    # stopped after 4 epochs
aekit train --data "$DATA/images[:9000]" "${COMMON[@]}" --init "$RUNS/drunet-a" --loss psnr --epochs 24 --lr 5e-4 \
    --schedule onecycle --out "$RUNS/drunet-b"                                # stopped in epoch 7 (batch 44)
aekit train --data "$DATA/images[:9000]" "${COMMON[@]}" --init "$RUNS/drunet-b" --loss psnr --epochs 14 --lr 4e-4 \
    --schedule linear --out "$RUNS/drunet-c"                                  # stopped in epoch 4 (batch 119)
# the last stage adds 64x64 crops of the same training faces enlarged 1-2x: the scale of photos' tiles
python examples/denoiser_crops.py "$DATA/images" "$RUNS/drunet-mix" --count 9000
aekit train --data "$RUNS/drunet-mix" "${COMMON[@]}" --init "$RUNS/drunet-c" --loss psnr --epochs 5 --lr 3e-4 \
    --schedule linear --out "$RUNS/faces-64-denoise"

aekit models package "$RUNS/faces-64" --name faces-64 --task codec --out "$PKG/faces-64" \
    --description "faces codec: 64x64 face -> 128-d latent -> face, with latent priors and edit directions (improved preset)"
aekit fit-prior --model "$PKG/faces-64" --data "$DATA/images[:9000]" --limit 9000
# the feature extractor: faces-64 trained 8 more epochs with a VICReg term on its pooled last stage (the winner
# of vicreg:pooled=0.01, infonce:0.2=0.1 and masked:0.6 at this budget, ~30 min each), shipped as the encoder alone
aekit train --data "$DATA/images[:9000]" --arch improved --init "$PKG/faces-64" --epochs 8 --batch-size 32 --lr 1e-3 \
    --schedule linear --flip --objective vicreg:pooled=0.01 --out "$RUNS/faces-64-features"
aekit models package "$RUNS/faces-64-features" --name faces-64-features --task features --encoder-only \
    --out "$PKG/faces-64-features" \
    --description "face feature extractor for embed/similar/classify/cluster/umap: faces-64's encoder trained on with VICReg (the encoder alone)"
python benchmarks/feature_objectives.py --model "$RUNS/faces-64-features" --no-pixels   # probe and search vs PCA
aekit models package "$RUNS/faces-64-denoise" --name faces-64-denoise --task denoise --out "$PKG/faces-64-denoise" \
    --description "face denoiser told the noise level (estimated by default): gaussian, camera noise, JPEG'd camera noise, salt & pepper; photos of any size (drunet preset)"

aekit eval --model "$PKG/faces-64" --data "$DATA/images[9000:]" --train-data "$DATA/images[:9000]" \
    --baselines --labels "$DATA/attributes.csv" --out "$RUNS/faces-64-report"
python benchmarks/denoise_table.py --faces 1000 --bm3d-images 200 --bm3d-workers 2   # against BM3D (pip install bm3d)
aekit eval --model "$PKG/faces-64-denoise" --data "$DATA/images[9000:]" --train-data "$DATA/images[:9000]" \
    --noise gaussian:0.05 --noise gaussian:0.1 --noise gaussian:0.2 --noise saltpepper:0.1 \
    --noise "poisson-gaussian:0.01,0.02+jpeg:75" --bm3d-images 0 --out "$RUNS/faces-64-denoise-report"
# then write each folder's README.md (the model card) and refresh the sums in pretrained.json:
#   python -c "from aekit.pretrained import record_in_manifest as r; r('$PKG/faces-64', 'faces-64', ['codec'])"
