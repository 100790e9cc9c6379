#!/usr/bin/env bash
# The downstream check of a pretrained UNet (issue 13), as `scripts/gpu_quality.sh weighting`
# runs it on a GPU, here on the CPU: a frozen head trained with 10% of the GlaS training labels
# (2 classes, 1 µm/px) on each given UNet, or on a random-init one for `none`, scored on the same
# validation images every 100 steps. Reads the data that `scripts/gpu_train.sh prepare` packed
# (target/gpu-pack/glas), or the same packed elsewhere: PACK=../runs/pretrain-data (cpu_pretrain.sh).
# SEED (default 0) picks the labelled 10%, the validation images, the head's init and the batches;
# a run with another seed is named down-NAME-sSEED.
#   [SEED=N] scripts/frozen_check.sh RUNS_DIR PRETRAINED.histoseg|none ...
# Prints each run's validation curve (RUNS_DIR/down-NAME[-sSEED]/validation.csv).
set -euo pipefail
mkdir -p "${1:?runs folder}"
runs=$(realpath "$1")
shift
unets=()
for pre in "$@"; do if [ "$pre" = none ]; then unets+=(none); else unets+=("$(realpath "$pre")"); fi; done
seed=${SEED:-0}
cd "$(dirname "$0")/.."
bin=${BIN:-$PWD/target/release/histoseg}
cd "${PACK:-target/gpu-pack}"
for pre in "${unets[@]}"; do
  name=$(basename "$pre" .histoseg)
  if [ "$seed" != 0 ]; then name="$name-s$seed"; fi
  "$bin" train --images glas/images --masks glas/masks --image-um-per-px 0.62 --classes "background:000000,gland:00c853" \
    --pretrained "$pre" --mode frozen --um-per-px 1.0 --tile 128 --label-fraction 0.1 --val-fraction 0.2 \
    --steps 600 --stop-after-steps 400 --cache 256 --batch 8 --validate-every 100 --seed "$seed" --device cpu --run "$runs/down-$name" \
    --log-every 30 --name "down-$name" --out "$runs/down-$name.histoseg" > "$runs/down-$name.log" 2>&1
  echo "$name: $(tail -n +2 "$runs/down-$name/validation.csv" | cut -d, -f2 | tr '\n' ' ')"
done
