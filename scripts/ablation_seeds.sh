#!/usr/bin/env bash
# Issue 13's ablation: does diffusion pretraining pay? The shipped UNet (5 levels, attention),
# diffusion-pretrained or randomly initialised, with a frozen UNet under a feature head or fine-tuned
# whole, trained on 10% or 100% of the GlaS training labels, three seeds each. Every cell has the
# same budget: 300 steps of batch 4, 128 px tiles at 1 µm/px, 2 classes, the best weights kept by
# validation mean Dice over all classes, background included, on held-out training images (runs
# before session 29 kept them by the object classes' Dice; results/ablation/kept-by-object-dice/
# holds the old runs of every main-table row and of the nuclei heads), then scored on all 60 GlaS
# testA images.
# Resumable: a cell whose report exists is skipped, a cell stopped mid-run goes on from its
# checkpoint. `scripts/ablation_seeds.py` prints the README tables from the reports.
#
#   scripts/ablation_seeds.sh [CELL...]    CELL: pre|rand-frozen|finetune-10|100-sSEED[-tT.T...][-lL.L...]
#
# The default is the 24 cells of the main table. A cell's optional suffix changes what the head
# reads: -t10.50.200 the timesteps (default 50; several are DDPM-Seg's side-by-side features),
# -l0.1.2 the decoder levels (default 0,1), -z a head that standardises each feature channel first
# (`--standardize-features`); `variants` runs the feature rows of the second table.
# -n and -nb2 are nuclei cells (the instance head against the 2-class head): MoNuSeg train at
# 0.5 µm/px with 2 classes, or with background / nucleus / nucleus boundary (2 px, from the instance
# masks) and the boundary class split by the marker watershed; the rest of the budget as above.
# `train --boundary-class 2` makes validation merge the boundary into the nuclei, in prediction and
# truth alike, so both heads keep their weights by the mean Dice of background and nucleus (runs
# from before that flag took the boundary class into their mean).
# They are scored on the 14 MoNuSeg test images (pixel Dice, AJI) as their int8 export, the file
# that records the boundary class; `instances` runs them.
#
# PRETRAINED (default results/ablation/pretrained-uniform-809.histoseg, the int8 export of the
# 809-step pretraining run in results/gpu-2026-11-24/pre-uniform) is the pretrained UNet.
# ABLATION_OUT (default results/ablation) is where the reports and logs go: a run with another
# PRETRAINED needs its own, as cells whose report exists there are skipped; HISTOSEG_RUNS likewise.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/histoseg}
[ -x "$BIN" ] || cargo build --release --features cli --bin histoseg
PRE=${PRETRAINED:-results/ablation/pretrained-uniform-809.histoseg}
OUT=${ABLATION_OUT:-results/ablation}
RUNS=${HISTOSEG_RUNS:-../runs}/ablation-seeds
mkdir -p "$OUT" "$RUNS"
COMMON=(--tile 128 --overlap 32 --batch 4 --steps 300 --validate-every 100
        --cache 256 --device cpu --log-every 60)

# MoNuSeg train resampled to 0.5 µm/px once, as a folder of images and 2-class masks, or with an
# argument 3-class masks whose boundary is that many pixels wide
nuclei_folder() {
  local dir=$RUNS/monuseg-0.5${1:+-b$1}
  [ -d "$dir/masks" ] || "$BIN" dataset --dataset monuseg --split train --um-per-px 0.5 ${1:+--boundaries "$1"} --out "$dir" >&2
  echo "$dir"
}
NUCLEUS=background:000000,nucleus:2962ff
NUCLEI=(--image-um-per-px 0.5 --um-per-px 0.5)

cell() {
  local name=$1 init mode labels seed variant
  IFS=- read -r init mode labels seed variant <<< "$name"
  seed=${seed#s}
  if [ -f "$OUT/$name.json" ]; then echo "== $name: done"; return; fi
  local args=(--seed "$seed" --mode "$mode" --label-fraction "$(awk "BEGIN {print $labels / 100}")")
  local data=(--dataset glas --um-per-px 1.0) test=(--dataset glas)
  case $init in pre) args+=(--pretrained "$PRE") ;; rand) args+=(--pretrained none) ;; *) echo "bad cell $name" >&2; exit 2 ;; esac
  [ "$mode" = finetune ] && args+=(--lr 5e-4)
  for v in ${variant//-/ }; do
    case $v in
      t*) args+=(--timestep "$(tr . , <<< "${v#t}")") ;;
      l*) args+=(--feature-levels "$(tr . , <<< "${v#l}")") ;;
      z) args+=(--standardize-features) ;;
      n) data=(--images "$(nuclei_folder)/images" "${NUCLEI[@]}" --masks "$(nuclei_folder)/masks" --classes "$NUCLEUS")
         test=(--dataset monuseg) ;;
      nb2) data=(--images "$(nuclei_folder)/images" "${NUCLEI[@]}" --masks "$(nuclei_folder 2)/masks" --classes "$NUCLEUS,nucleus boundary:ffd600")
           test=(--dataset monuseg); args+=(--boundary-class 2) ;;
      *) echo "bad variant $v in $name" >&2; exit 2 ;;
    esac
  done
  [ -f "$RUNS/$name/checkpoint/state.json" ] && args+=(--resume)
  echo "== $name: ${args[*]}"
  if [ ! -f "$RUNS/$name.trained" ]; then
    "$BIN" train "${COMMON[@]}" "${data[@]}" "${args[@]}" --name "$name" --run "$RUNS/$name" --out "$RUNS/$name.histoseg" \
      >> "$OUT/$name.log" 2>&1
    touch "$RUNS/$name.trained"
  fi
  local model=$RUNS/$name.histoseg
  if [ "${test[1]}" = monuseg ]; then
    model=$RUNS/$name.int8.histoseg
    # export compares int8 with f32 on one test image only: eval below scores the int8 file on all;
    # it keeps the boundary class that train recorded
    "$BIN" export --model "$RUNS/$name.histoseg" "${test[@]}" --limit 1 --out "$model" >> "$OUT/$name.log" 2>&1
  fi
  "$BIN" eval --model "$model" "${test[@]}" --report "$OUT/$name.json.part" >> "$OUT/$name.log" 2>&1
  mv "$OUT/$name.json.part" "$OUT/$name.json"
}

CELLS=("$@")
if [ "${CELLS[*]}" = instances ]; then
  CELLS=()
  for seed in 0 1 2; do CELLS+=("pre-finetune-100-s$seed-n" "pre-finetune-100-s$seed-nb2"); done
elif [ "${CELLS[*]}" = variants ]; then
  CELLS=()
  for seed in 0 1 2; do
    for v in t10 t200 t10.50.200 l0 l0.1.2 l0.1.2.3; do CELLS+=("pre-frozen-10-s$seed-$v"); done
  done
elif [ ${#CELLS[@]} -eq 0 ]; then
  for labels in 10 100; do
    for seed in 0 1 2; do
      for init in pre rand; do
        for mode in frozen finetune; do CELLS+=("$init-$mode-$labels-s$seed"); done
      done
    done
  done
fi
for c in "${CELLS[@]}"; do cell "$c"; done
