#!/usr/bin/env bash
# A model with three classes trained from plain folders, as a user with their own data would:
# MoNuSeg written as folders of images and class-index masks (0 background, 1 nucleus interior,
# 2 nucleus boundary, 1 px at 0.5 µm/px, from the instance masks) by `histoseg dataset`, then
# `histoseg train --images --masks --classes` (frozen diffusion UNet of the shipped nuclei
# model, light head), `histoseg eval` on the test folders, and an int8 export. The published
# figures, weights and logs are copied to results/nuclei-3class/.
#
#   scripts/three_class_example.sh          (about 25 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/histoseg
[ -x "$BIN" ] || cargo build --release --features cli --bin histoseg
RUNS=${HISTOSEG_RUNS:-../runs}
D=$RUNS/monuseg-3class
OUT=results/nuclei-3class
CLASSES=background:000000,nucleus:ff3d7f,boundary:ffd600
mkdir -p "$OUT"
for split in train test; do
  [ -d "$D/$split" ] || "$BIN" dataset --dataset monuseg --split $split --um-per-px 0.5 --boundaries 1 --out "$D/$split"
done
folders() { echo --images "$D/$1/images" --masks "$D/$1/masks" --instances "$D/$1/instances" --image-um-per-px 0.5; }
# shellcheck disable=SC2046
[ -f "$RUNS/nuclei-3class.histoseg" ] || "$BIN" train $(folders train) --classes "$CLASSES" --pretrained models/nuclei.histoseg --mode frozen \
  --um-per-px 0.5 --tile 128 --overlap 32 --steps 600 --batch 8 --cache 256 --validate-every 100 --seed 0 \
  --name nuclei-3class --out "$RUNS/nuclei-3class.histoseg" --run "$RUNS/nuclei-3class" ${RESUME:+--resume}
# shellcheck disable=SC2046
"$BIN" export --model "$RUNS/nuclei-3class.histoseg" $(folders test) --min-object-um2 4 \
  --out "$OUT/nuclei-3class.histoseg" --report "$OUT/test.json"
cp "$RUNS/nuclei-3class/log.csv" "$RUNS/nuclei-3class/validation.csv" "$OUT/"
