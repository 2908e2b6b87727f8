#!/usr/bin/env bash
# The face codec: one variable-rate `codec` model (6 qualities) trained for rate and distortion on
# celeba-10k's 9,000 training faces, packaged (float16, integer entropy tables fixed), then its R-D table and
# plot against JPEG / WebP / AVIF on the 1,000 test faces.
#
#   bash examples/train_codec.sh [DATA_DIR] [OUT_DIR]
#
# Budget: 2 CPU cores, about 2 hours. The default preset (analysis 64 wide, synthesis 96, latent 4x4x128) takes
# about 14 ms a face forward + backward on one core, so an epoch of 9,000 faces is ~75 s on two; 85 epochs at
# batch 32 is ~23,000 steps, each face drawing one of the 6 qualities (lambda 0.0005 ... 0.016; docs/CODEC.md).
#  --lr 3e-4 --schedule onecycle   3x CompressAI's 1e-4, warmed up then annealed: a short run needs the speed
#  --clip-grad 1.0 --on-nan skip    CompressAI's clipping; without it the GDN model diverged at 4e-4
#  --flip                          faces are nearly symmetric: twice the data for free
#  --val-fraction 0.02             val_psnr and val_bpp at the default quality each epoch (metrics.jsonl), on
#                                  2% of the training faces held out: the test faces 9001-10000 are never used
# A tiny check of the loop (width 16, latent 4x4x16, 200 faces, 2 epochs, 10 s): loss 27.6 -> 24.8
# (tests/test_codec.py::test_loss_falls_in_a_few_seconds_of_training checks the same on synthetic faces).
# Interrupted? `aekit train --resume "$OUT"` continues exactly.
set -euo pipefail
DATA="${1:-../shared/data/celeba-10k}"
OUT="${2:-runs/codec-celeba10k}"
PACKAGE="${PACKAGE:-plugins/aekit_pretrained/faces-64-codec}"
aekit train --arch codec --data "$DATA/images[:9000]" --val-fraction 0.02 \
    --epochs 85 --batch-size 32 --lr 3e-4 --clip-grad 1.0 --on-nan skip --schedule onecycle --flip --sample-every 10 --out "$OUT"
# --task compress: `aekit compress` uses it without --model; generate, edit, embed keep faces-64
aekit models package "$OUT" --name faces-64-codec --task compress --out "$PACKAGE" \
    --description "face codec: 64x64 faces to entropy-coded bitstreams, 6 qualities or --bytes N (codec preset)"
python benchmarks/codec_table.py --model "$PACKAGE" --faces 1000 --out docs/results/faces-64-codec
# then: write "$PACKAGE/README.md" (the model card, with docs/results/codec/table.md and curve.png) and run the
# package command again to record its SHA-256 in pretrained.json
