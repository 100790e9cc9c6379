#!/usr/bin/env bash
# Diffusion pretraining on this machine's CPU, in the background, resumed session after session
# (issue 13: "On the CPU, run in the background and resume across days; say how far you got").
#
#   scripts/cpu_pretrain.sh SECONDS
#       Packs the GPU runs' training data once (scripts/gpu_train.sh pack) into
#       $HISTOSEG_RUNS/pretrain-data, then pretrains with the GPU recipe of gpu_quality.sh for
#       SECONDS and stops with a checkpoint: the same 113 unlabelled training images at 0.5 and
#       1 µm/px, batch 32 of 128 px, plain epsilon MSE, lr 3e-4 on a 50k-step cosine schedule.
#       Run it again to go on: the run lives in $HISTOSEG_RUNS/pre-uniform-cpu and resumes
#       exactly (weights, EMA, Adam) on the same machine. It starts from the committed 809-step
#       GPU UNet (--init; that run's optimiser state was not kept), so its steps add to those
#       809, with a fresh Adam and a 100-step warm-up. On a machine without that folder (every
#       session may get a new one), or one whose run is behind the slim copy committed in
#       results/cpu-pretrain/ (see save and adopt), it first restores the run from that copy.
#       PACK (the packed data), DEVICE (cpu) and CHECKPOINT_EVERY (20 steps) may be set: the GPU
#       continues this same run with them (gpu_quality.sh long).
#
#   scripts/cpu_pretrain.sh save [DIR]
#       Writes a slim copy of the run into results/cpu-pretrain/, or DIR (`histoseg slim`: its logs,
#       settings and last checkpoint with int8 weights and EMA, 7 MB, where the whole f32
#       checkpoint with Adam's moments is 54 MB), to be committed, so that the next machine
#       resumes it. That resume is not exact: the weights are rounded to int8 and Adam's moments
#       start again (the run's state.json records at which steps), with the learning rate
#       warmed up again over 100 steps.
#
#   scripts/cpu_pretrain.sh adopt DIR
#       Makes DIR, a slim copy of the same run that got further elsewhere (a GPU chunk:
#       `bash scripts/gpu_quality.sh long SECONDS` sends one back), the committed copy; the next
#       run here restores from it, since a run folder behind the committed copy is replaced.
#
#   scripts/cpu_pretrain.sh status [DIR]
#       Prints how far the run (or its copy in DIR) got: steps here, training hours, the total
#       with the 809 before, and the held-out loss at each validation (the README's table).
#
# The run folder's log.csv, validation.csv and settings.json are what the README's CPU figures
# come from; save copies them to results/cpu-pretrain/ with the checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${HISTOSEG_RUNS:-$ROOT/../runs}
RUN=$RUNS/pre-uniform-cpu
INIT=results/ablation/pretrained-uniform-809.histoseg
BIN=${BIN:-$ROOT/target/release/histoseg}
PACK=${PACK:-$RUNS/pretrain-data}
DEVICE=${DEVICE:-cpu}
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-20}
before=809

if [ "${1:-}" = status ]; then
  # from the run folder, or from its committed copy: scripts/cpu_pretrain.sh status results/cpu-pretrain
  dir=${2:-$RUN}
  tail -1 "$dir/log.csv" | awk -F, -v b=$before '{printf "CPU steps so far: %d in %.1f h of training (%.4f steps/s); %d + %d = %d of 50000\n", $1, $4 / 3600, $1 / $4, b, $1, b + $1}'
  echo
  echo "| pretraining steps | held-out loss |"
  echo "|---|---|"
  tail -n +2 "$dir/validation.csv" | awk -F, -v b=$before '{printf "| %d + %d = %d | %.4f |\n", b, $1, b + $1, -$2}'
  exit 0
fi
KEPT=$ROOT/results/cpu-pretrain
# the step of the checkpoint in a run folder (or its copy), 0 when it has none
step_of() { grep -o '"step": *[0-9]*' "$1/checkpoint/state.json" 2>/dev/null | grep -o '[0-9]*$' || echo 0; }
# copies what a slim copy holds (logs, settings, checkpoint without Adam's moments): FROM TO
copy_slim() {
  mkdir -p "$2/checkpoint"
  cp "$1"/{log.csv,validation.csv,settings.json} "$2/"
  cp "$1"/checkpoint/{state.json,weights.histoseg,ema.histoseg} "$2/checkpoint/"
}

if [ "${1:-}" = save ]; then
  [ -f "$RUN/checkpoint/state.json" ] || { echo "no checkpoint in $RUN to save" >&2; exit 1; }
  "$BIN" slim --run "$RUN" --out "${2:-$KEPT}"
  exit 0
fi
if [ "${1:-}" = adopt ]; then
  from=${2:?usage: scripts/cpu_pretrain.sh adopt DIR}
  [ "$(step_of "$from")" -gt "$(step_of "$KEPT")" ] || { echo "$from (step $(step_of "$from")) is not ahead of $KEPT (step $(step_of "$KEPT"))" >&2; exit 1; }
  copy_slim "$from" "$KEPT"
  echo "results/cpu-pretrain is now at step $(step_of "$KEPT"); the next run here restores it"
  exit 0
fi
seconds=${1:?usage: scripts/cpu_pretrain.sh SECONDS | save [DIR] | adopt DIR | status [DIR]}

if [ "$(step_of "$KEPT")" -gt "$(step_of "$RUN")" ]; then
  echo "restoring the run from $KEPT (step $(step_of "$KEPT"); here: step $(step_of "$RUN"))"
  rm -rf "$RUN"
  copy_slim "$KEPT" "$RUN"
fi

[ -f "$PACK/samples/cmu-small-region.svs" ] || bash scripts/gpu_train.sh pack "$PACK"
resume=()
[ -d "$RUN/checkpoint" ] && resume=(--resume)
cd "$PACK"
exec "$BIN" pretrain --source glas/images,0.62 --source monuseg-0.5/images,0.5 --source samples,0.5 --um-per-px 0.5,1.0 \
  --steps 50000 --batch 32 --patch 128 --lr 3e-4 --warmup 100 --loss-weighting uniform --init "$ROOT/$INIT" \
  --checkpoint-every "$CHECKPOINT_EVERY" --validate-every 100 --device "$DEVICE" --run "$RUN" "${resume[@]}" \
  --stop-after "$seconds" --log-every 60 --out "$RUN.histoseg"
