#!/usr/bin/env bash
# GlaS ablations: diffusion-pretrained vs random-init UNet at 10% and 100% of the training labels,
# feature timestep, decoder levels, and frozen head vs full fine-tune. Every run trains with the
# histoseg CLI, evaluates on GlaS testA (whole images, same tiling as the viewer) and writes
# runs/ablation/<row>.json; scripts/ablation_table.py turns them into the README table.
#
#   scripts/ablation.sh [ROW...]        (default: all rows; needs runs/pretrain.histoseg)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/histoseg
[ -x "$BIN" ] || cargo build --release --features cli --bin histoseg
PRE=${PRETRAINED:-runs/pretrain.histoseg}
OUT=runs/ablation
mkdir -p "$OUT"
COMMON=(--dataset glas --um-per-px 1.0 --tile 128 --overlap 32 --steps 300 --cache 256 --seed 0 --name glands)

row() {
  local name=$1; shift
  if [ -f "$OUT/$name.json" ]; then echo "== $name: done"; return; fi
  echo "== $name: $*"
  "$BIN" train "${COMMON[@]}" "$@" --out "$OUT/$name.histoseg" --run "${HISTOSEG_RUNS:-../runs}/ablation-$name" | tee "$OUT/$name.log"
  "$BIN" eval --model "$OUT/$name.histoseg" --dataset glas --report "$OUT/$name.json" | tee -a "$OUT/$name.log"
  printf '%s\n' "$*" > "$OUT/$name.args"
}

ROWS=("$@")
[ ${#ROWS[@]} -gt 0 ] || ROWS=(pre-100 rand-100 pre-10 rand-10 pre-t10 pre-t200 pre-l0 pre-finetune)
for r in "${ROWS[@]}"; do
  case $r in
    pre-100)      row "$r" --pretrained "$PRE" ;;
    rand-100)     row "$r" --pretrained none ;;
    pre-10)       row "$r" --pretrained "$PRE" --label-fraction 0.1 ;;
    rand-10)      row "$r" --pretrained none --label-fraction 0.1 ;;
    pre-t10)      row "$r" --pretrained "$PRE" --timestep 10 ;;
    pre-t200)     row "$r" --pretrained "$PRE" --timestep 200 ;;
    pre-l0)       row "$r" --pretrained "$PRE" --feature-levels 0 ;;
    pre-l012)     row "$r" --pretrained "$PRE" --feature-levels 0,1,2 ;;
    pre-finetune) row "$r" --pretrained "$PRE" --mode finetune --batch 4 --lr 5e-4 ;;
    *) echo "unknown row $r" >&2; exit 2 ;;
  esac
done
python3 scripts/ablation_table.py
