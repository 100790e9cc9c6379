#!/usr/bin/env bash
# The CPU recipe of the models shipped before issue 13 (3-level UNet, 2 classes; 2 CPU cores, no
# GPU). Today's models/ come from scripts/gpu_quality.sh on an H100 (see README, "The shipped
# models"); this script now trains the same recipe with today's default architecture unless
# given --channel-mults 1,2,4 --attention false by hand. Those models were made
# at commit d33f664 with that commit's CLI (see its copy of this script); the commands below are
# the same training in today's CLI (run folders, resumable loop, EMA), so a rerun gives a
# comparable model, not a byte-identical one. Run state goes to $HISTOSEG_RUNS (default ../runs).
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
        --out runs/pretrain.histoseg ${RESUME:+--resume}
      ;;
    glands)
      scripts/ablation.sh pre-finetune
      "$BIN" export --model runs/ablation/pre-finetune.histoseg --out models/glands.histoseg --dataset glas \
        --report runs/glands-export.json
      ;;
    nuclei)
      "$BIN" train --dataset monuseg --pretrained runs/pretrain.histoseg --um-per-px 0.5 --tile 128 --overlap 32 \
        --steps 300 --batch 8 --cache 256 --seed 0 --name nuclei --out runs/nuclei.histoseg
      "$BIN" export --model runs/nuclei.histoseg --out models/nuclei.histoseg --dataset monuseg \
        --report runs/nuclei-export.json
      ;;
    *) echo "unknown step $what" >&2; exit 2 ;;
  esac
done
