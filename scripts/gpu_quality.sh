#!/usr/bin/env bash
# The GPU side of issue 13 ("Models a pathologist trusts"), in stages that each fit one call of
# the device tool (at most 10 minutes, carry [".gpu"], what comes back: at most 8 files of 16 MiB
# in $OUT). `scripts/gpu_train.sh prepare pretrain` (for pretrain and long) or `prepare finetune`
# (for finetune and continue) makes .gpu/ here first; the whole pack, which weighting reads, is
# now over the 64 MiB that may travel. Several runs share the GPU at once: the small UNet leaves
# most of an H100 idle, so parallel runs cost little each.
#
#   bash scripts/gpu_quality.sh weighting SECONDS
#       Training speed of the old and the new UNet (`bench --train`), then three pretraining runs
#       side by side, one per loss weighting (one-minus-alpha-bar, uniform, min-snr), for
#       SECONDS each; then a frozen head on each one's EMA weights, and one on a random-init
#       UNet, with 10% of the GlaS training labels (2 classes, 1 µm/px), scored on the
#       validation split. Prints the downstream validation Dice of each and writes the winner's
#       name to target/gpu-run/winner. Back: the logs and the winner's EMA UNet.
#
#   bash scripts/gpu_quality.sh pretrain SECONDS [WEIGHTING]
#       Continues the winner's pretraining run (or WEIGHTING's; a new one when neither this
#       machine nor .gpu/ has it) for SECONDS. Back: its log and EMA UNet (pre-WEIGHTING.histoseg).
#
#   bash scripts/gpu_quality.sh long SECONDS
#       Continues the long pretraining run that scripts/cpu_pretrain.sh keeps (restored from
#       results/cpu-pretrain on a cold machine: it travels in the working tree, not in .gpu/)
#       with the same settings on the GPU for SECONDS, checkpointing every $CHECKPOINT_EVERY
#       (500) steps. Back: its log (long.log) and its slim copy (long/, int8, as committed).
#       Here: `scripts/cpu_pretrain.sh adopt FILES_AT/long`, then commit results/cpu-pretrain.
#
#   bash scripts/gpu_quality.sh continue SECONDS STEPS_GLANDS STEPS_NUCLEI
#       The training speed, the shipped models' inference speed (`bench`), then more steps for
#       the shipped models: each goes on from its own file (or from .gpu/NAME-more.histoseg, what
#       an earlier call sent back), UNet and head, at learning rate $LR_MORE (default 2e-4), on
#       the validation split it was chosen on, as run NAME-more$RUN_TAG. Back: as finetune.
#
#   bash scripts/gpu_quality.sh finetune SECONDS STEPS_GLANDS STEPS_NUCLEI
#       Fine-tunes the instance-aware models from the pretrained UNet, side by side: glands
#       (background / gland / gland boundary at 1 µm/px, tile 256) and nuclei (background /
#       nucleus / nucleus boundary at 0.5 µm/px, tile 128). Back: their best weights and logs.
#
# Run state stays in target/gpu-run on the machine (it survives between calls while the machine
# is warm); each stage also sends back what the next needs, in case the machine went cold.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
: "${OUT:?OUT must name the folder whose files come back}"
bash scripts/gpu_train.sh setup
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
# a rehearsal here: DEVICE=cpu BIN=$PWD/target/release/histoseg BENCH_ITERS=1 DOWN_STEPS=2 DOWN_CACHE=8 OUT=/tmp/out ...
BIN=${BIN:-$ROOT/target/gpu-bin/histoseg}
DEVICE=${DEVICE:-gpu}
BENCH_ITERS=${BENCH_ITERS:-20}
DOWN_STEPS=${DOWN_STEPS:-600}
DOWN_CACHE=${DOWN_CACHE:-256}
LR_MORE=${LR_MORE:-2e-4}
RUNS=$ROOT/target/gpu-run
mkdir -p "$RUNS"
cd target/gpu-data
nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu --format=csv 2>/dev/null | tee "$OUT/gpu.txt"

PRETRAIN_DATA=(--source glas/images,0.62 --source monuseg-0.5/images,0.5 --source samples,0.5 --um-per-px 0.5,1.0)

pretrain_run() { # WEIGHTING SECONDS
  "$BIN" pretrain "${PRETRAIN_DATA[@]}" --steps 50000 --batch 32 --patch 128 --lr 3e-4 --warmup 200 --loss-weighting "$1" \
    --checkpoint-every 500 --validate-every 500 --device "$DEVICE" --run "$RUNS/pre-$1" --resume \
    --stop-after "$2" --log-every 30 --out "$RUNS/pre-$1.histoseg"
}

# the pretrained EMA UNet of a run (its last checkpoint), or the published file when it finished
pretrained_of() {
  if [ -f "$RUNS/pre-$1.histoseg" ]; then echo "$RUNS/pre-$1.histoseg"; else echo "$RUNS/pre-$1/checkpoint/ema.histoseg"; fi
}

# training speed of the old (3 levels) and the new (5 levels, attention) UNet on real patches
bench() {
  local image
  image=glas/images/$(ls glas/images | head -1)
  {
    "$BIN" bench --train --device "$DEVICE" --image "$image" --tile 64 --batch 8 --iters "$BENCH_ITERS" --channel-mults 1,2,4 --attention false
    "$BIN" bench --train --device "$DEVICE" --image "$image" --tile 128 --batch 32 --iters "$BENCH_ITERS"
  } 2>&1 | grep '^{' | tee -a "$OUT/bench.jsonl"
}

# inference speed of the shipped models (tiles of their own size), batch 1 and 8
infer_bench() {
  local image m b
  image=glas/images/$(ls glas/images | head -1)
  for m in glands nuclei; do
    for b in 1 8; do
      "$BIN" bench --device "$DEVICE" --model "$ROOT/models/$m.histoseg" --image "$image" --batch "$b" --iters "$BENCH_ITERS"
    done
  done 2>&1 | grep '^{' | tee -a "$OUT/infer.jsonl"
}

# the instance-aware models: NAME FROM STEPS LR SECONDS. FROM is a pretrained UNet, or a model
# with this very head and these classes, which then goes on training (UNet and head).
train_glands() {
  "$BIN" train --images glas/images --masks glas-b5/masks --image-um-per-px 0.62 \
    --classes "background:000000,gland:00c853,gland boundary:ffd600" --boundary-class 2 \
    --pretrained "$2" --mode finetune --feature-levels 0 --um-per-px 1.0 --tile 256 --overlap 64 --val-fraction 0.15 \
    --steps "$3" --batch 4 --lr "$4" --validate-every 50 --seed 0 --device "$DEVICE" --run "$RUNS/$1" --resume \
    --stop-after "$5" --log-every 30 --name glands --out "$RUNS/$1.histoseg" > "$RUNS/$1.log" 2>&1
}
train_nuclei() {
  "$BIN" train --images monuseg-0.5/images --masks monuseg-0.5-b2/masks --instances monuseg-0.5/instances --image-um-per-px 0.5 \
    --classes "background:000000,nucleus:2962ff,nucleus boundary:ffd600" --boundary-class 2 \
    --pretrained "$2" --mode finetune --feature-levels 0 --um-per-px 0.5 --tile 128 --overlap 32 --val-fraction 0.15 \
    --steps "$3" --batch 8 --lr "$4" --validate-every 100 --seed 0 --device "$DEVICE" --run "$RUNS/$1" --resume \
    --stop-after "$5" --log-every 30 --name nuclei --out "$RUNS/$1.histoseg" > "$RUNS/$1.log" 2>&1
}

# each run's best weights (or its published file), its validation curve, and all logs
send_back() {
  local m
  for m in "$@"; do
    tail -3 "$RUNS/$m.log"
    cat "$RUNS/$m/validation.csv" 2>/dev/null
    if [ -f "$RUNS/$m.histoseg" ]; then cp "$RUNS/$m.histoseg" "$OUT/"; else cp "$RUNS/$m/best.histoseg" "$OUT/$m.histoseg"; fi
  done
  tar -cJf "$OUT/logs-$stage.tar.xz" -C "$RUNS" --exclude '*.histoseg' --exclude checkpoint --exclude '*.bpk' .
}

stage=${1:-}
shift || true
case $stage in
  weighting)
    seconds=${1:?seconds}
    bench
    for w in one-minus-alpha-bar uniform min-snr; do
      pretrain_run "$w" "$seconds" > "$RUNS/pretrain-$w.log" 2>&1 &
    done
    sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv | tee -a "$OUT/gpu.txt"
    wait
    for w in one-minus-alpha-bar uniform min-snr none; do
      pre=none
      [ "$w" = none ] || pre=$(pretrained_of "$w")
      "$BIN" train --images glas/images --masks glas/masks --image-um-per-px 0.62 --classes "background:000000,gland:00c853" \
        --pretrained "$pre" --mode frozen --um-per-px 1.0 --tile 128 --label-fraction 0.1 --val-fraction 0.2 \
        --steps "$DOWN_STEPS" --cache "$DOWN_CACHE" --batch 8 --validate-every 100 --seed 0 --device "$DEVICE" --run "$RUNS/down-$w" \
        --stop-after 150 --log-every 30 --name "down-$w" --out "$RUNS/down-$w.histoseg" > "$RUNS/down-$w.log" 2>&1 &
    done
    wait
    best=; best_dice=-1
    for w in one-minus-alpha-bar uniform min-snr none; do
      dice=$(tail -n +2 "$RUNS/down-$w/validation.csv" | cut -d, -f2 | sort -g | tail -1)
      steps=$(tail -n 1 "$RUNS/pre-$w/log.csv" 2>/dev/null | cut -d, -f1)
      echo "downstream $w: best validation Dice ${dice:-none} (pretraining steps ${steps:-0})" | tee -a "$OUT/summary.txt"
      if [ "$w" != none ] && [ -n "$dice" ] && awk "BEGIN{exit !($dice > $best_dice)}"; then best=$w; best_dice=$dice; fi
    done
    echo "$best" > "$RUNS/winner"
    echo "winner: $best" | tee -a "$OUT/summary.txt"
    cp "$(pretrained_of "$best")" "$OUT/pre-$best.histoseg"
    tar -cJf "$OUT/logs.tar.xz" -C "$RUNS" --exclude '*.histoseg' --exclude checkpoint --exclude '*.bpk' .
    ;;
  pretrain)
    seconds=${1:?seconds}
    w=${2:-$(cat "$RUNS/winner")}
    if [ ! -d "$RUNS/pre-$w/checkpoint" ] && [ -f "$ROOT/.gpu/pre-$w.run.tar" ]; then
      echo "cold machine: starting pre-$w from the carried weights"
      mkdir -p "$RUNS/pre-$w" && tar -xf "$ROOT/.gpu/pre-$w.run.tar" -C "$RUNS"
    fi
    pretrain_run "$w" "$seconds" 2>&1 | tee "$OUT/pretrain-$w.log"
    cp "$(pretrained_of "$w")" "$OUT/pre-$w.histoseg"
    tar -cJf "$OUT/logs-$stage.tar.xz" -C "$RUNS" --exclude '*.histoseg' --exclude checkpoint --exclude '*.bpk' .
    ;;
  long)
    # the long pretraining run of scripts/cpu_pretrain.sh, restored from its committed copy
    # (results/cpu-pretrain, in the working tree) on a cold machine, continued here on the GPU
    seconds=${1:?seconds}
    export HISTOSEG_RUNS=$RUNS PACK=$ROOT/target/gpu-data BIN DEVICE CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-500}
    bash "$ROOT/scripts/cpu_pretrain.sh" "$seconds" 2>&1 | tee "$OUT/long.log"
    bash "$ROOT/scripts/cpu_pretrain.sh" save "$OUT/long" | tee -a "$OUT/long.log"
    ;;
  finetune)
    seconds=${1:?seconds}; steps_glands=${2:?steps}; steps_nuclei=${3:?steps}
    w=$(cat "$RUNS/winner" 2>/dev/null || echo "${WEIGHTING:?}")
    pre=$(pretrained_of "$w")
    [ -f "$pre" ] || pre=$ROOT/.gpu/pre-$w.histoseg
    [ -n "${SKIP_BENCH:-}" ] || bench
    train_glands glands "$pre" "$steps_glands" 5e-4 "$seconds" &
    train_nuclei nuclei "$pre" "$steps_nuclei" 5e-4 "$seconds" &
    wait
    send_back glands nuclei
    ;;
  continue)
    seconds=${1:?seconds}; steps_glands=${2:?steps}; steps_nuclei=${3:?steps}
    if [ -z "${SKIP_BENCH:-}" ]; then bench; infer_bench; fi
    # from the shipped models, or from what an earlier call sent back (put in .gpu/ here); on
    # the same validation split (seed 0) as the shipped models were chosen on; each call is a
    # run of its own (RUN_TAG), with its own warmup and cosine decay
    tag=${RUN_TAG:-1}
    from() {
      local prev="$RUNS/$1-more$((tag - 1)).histoseg" # the last call's, on a machine still warm
      if [ -f "$prev" ]; then echo "$prev"
      elif [ -f "$ROOT/.gpu/$1-more.histoseg" ]; then echo "$ROOT/.gpu/$1-more.histoseg"
      else echo "$ROOT/models/$1.histoseg"; fi
    }
    echo "glands from $(from glands), nuclei from $(from nuclei)" | tee -a "$OUT/summary.txt"
    train_glands "glands-more$tag" "$(from glands)" "$steps_glands" "$LR_MORE" "$seconds" &
    [ "$steps_nuclei" = 0 ] || train_nuclei "nuclei-more$tag" "$(from nuclei)" "$steps_nuclei" "$LR_MORE" "$seconds" &
    wait
    if [ "$steps_nuclei" = 0 ]; then send_back "glands-more$tag"; else send_back "glands-more$tag" "nuclei-more$tag"; fi
    ;;
  *) sed -n '2,39p' "$0"; exit 2 ;;
esac
ls -l "$OUT"
