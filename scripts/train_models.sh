#!/usr/bin/env bash
# The exact commands that produced the shipped models in models/ (2 CPU cores, no GPU).
#
#   scripts/train_models.sh pretrain   # DDPM on GlaS train_* + MoNuSeg train (stopped at step 1000)
#   scripts/train_models.sh glands     # fine-tuned UNet + head on GlaS train (= ablation row
#                                      # pre-finetune, the best on the validation split), export
#   scripts/train_models.sh nuclei     # frozen-UNet head on MoNuSeg train, export
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/histoseg
[ -x "$BIN" ] || cargo build --release --features cli --bin histoseg
DATA=${HISTOSEG_DATA:-../shared/data}
mkdir -p runs

for what in "$@"; do
  case $what in
    pretrain)
      # --steps 4000 was the plan; the shipped run was stopped at the step-1000 checkpoint
      # (checkpoints every 100 steps). `--resume` continues a stopped run.
      "$BIN" pretrain --source "$DATA/glas/images,0.62,train_" --source "$DATA/monuseg/train/images,0.2527" \
        --um-per-px 0.5,1.0 --steps "${PRETRAIN_STEPS:-1000}" --batch 8 --patch 64 --checkpoint-every 100 \
        --out runs/pretrain.ckpt ${RESUME:+--resume}
      ;;
    glands)
      scripts/ablation.sh pre-finetune
      "$BIN" export --checkpoint runs/ablation/pre-finetune.ckpt --out models/glands.histoseg --dataset glas \
        --report runs/glands-export.json
      ;;
    nuclei)
      "$BIN" train --dataset monuseg --pretrained runs/pretrain.ckpt --um-per-px 0.5 --tile 128 --overlap 32 \
        --steps 300 --batch 8 --cache 256 --seed 0 --name nuclei --classes background:000000,nucleus:ff3d7f \
        --out runs/nuclei.ckpt
      "$BIN" export --checkpoint runs/nuclei.ckpt --out models/nuclei.histoseg --dataset monuseg \
        --report runs/nuclei-export.json
      ;;
    *) echo "unknown step $what" >&2; exit 2 ;;
  esac
done
