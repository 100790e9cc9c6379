#!/usr/bin/env bash
# Training on a GPU machine that has an NVIDIA driver and its Vulkan ICD, but no Vulkan loader, no
# Rust, no network and no copy of ../shared; commands there run for at most 10 minutes and take at
# most 64 MiB of files along with the repository. Everything it needs is made here and carried in
# .gpu/ (git-ignored); a run trains in chunks that checkpoint, and its state comes back as files.
#
#   scripts/gpu_train.sh prepare [pretrain | finetune]
#       Here. Builds histoseg with the `gpu` feature (burn wgpu on Vulkan) into target/gpu and
#       compresses it (strip, xz -9); downloads Debian's libvulkan1 loader; packs the training
#       data with `histoseg dataset` (images as JPEG q90, masks lossless PNG) into .gpu/data.tar:
#         glas/         GlaS train at its own 0.62 µm/px, images + masks
#         monuseg-0.5/  MoNuSeg train at 0.5 µm/px (the finest working resolution), images +
#                       masks + instances
#         glas-b5/, monuseg-0.5-b2/
#                       masks only: background / interior / boundary (5 px of 0.62 µm, 2 px of
#                       0.5 µm), beside the images above, for the instance-aware heads
#         samples/      the permissively licensed samples (PNG, JPEG, Aperio SVS) for pretraining;
#                       those also in www/samples travel in the working tree, and setup copies
#                       them back in (samples-from-www.txt)
#       histoseg resamples them to any working resolution there (`--source glas/images,0.62`,
#       `--image-um-per-px 0.62`). Prints what will travel, the working tree and .gpu/ together,
#       against the device tool's 64 MiB limit, and fails when it is over (session 43: the
#       whole pack, 26.7 MB, came to 64.4 MiB with the 11.6 MB binary and the 27.6 MiB working
#       tree). With `pretrain`, data.tar holds only the images (22.8 MB, for gpu_quality.sh
#       pretrain and long: 60.7 MiB in all); with `finetune`, all but the samples and the 2-class
#       masks (25.5 MB, for gpu_quality.sh finetune and continue: 63.3 MiB).
#
#   scripts/gpu_train.sh pack DIR
#       Here. Only the data packing of prepare, into DIR, unpacked (scripts/cpu_pretrain.sh).
#
#   scripts/gpu_train.sh chunk NAME SECONDS -- HISTOSEG ARGS...
#       There (the device tool runs it with carry [".gpu"]). Unpacks the loader, the binary and
#       the data (into target/gpu-data, which survives between calls on a warm machine), restores
#       the run NAME from .gpu/NAME.run.tar.xz when the machine has no state of it, runs
#       `histoseg ARGS --device gpu --run target/gpu-run/NAME --resume --stop-after SECONDS`,
#       and leaves in $OUT the run folder (NAME.run.tar.xz, in 15 MB parts when larger) and the
#       log (NAME.log). Data paths in ARGS are relative to target/gpu-data, e.g.
#         chunk pre 480 -- pretrain --source glas/images,0.62 --source monuseg-0.5/images,0.5 \
#           --um-per-px 0.5,1.0 --steps 50000 --out pre.histoseg ...
#
#   scripts/gpu_train.sh collect NAME DIR
#       Here. Reassembles NAME.run.tar.xz from the files that came back (in DIR), unpacks it over
#       $HISTOSEG_RUNS/NAME (default ../runs/NAME), and puts a slim copy in .gpu/ for a chunk on a
#       fresh machine (`histoseg slim`): the weights and EMA, the state and the logs, without
#       Adam's moments and the best/final weights (the whole state of the 3.4M-parameter UNet,
#       54 MB, does not fit in 64 MiB beside the data). The weights stay f32, bit for bit, when
#       that still fits with the working tree and the rest of .gpu/, and are int8 otherwise (it
#       says which). A run resumed from it restarts Adam's moments, and its state.json records
#       the step. On a machine still warm from the last chunk, the state there is whole and the
#       resume is exact.
#
#   scripts/gpu_train.sh rehearse NAME SECONDS -- HISTOSEG ARGS...
#       Here. Runs `chunk` in a scratch copy with a local $OUT, on whatever Vulkan driver this
#       machine has (Mesa's lavapipe on a machine without a GPU): the whole path but the GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
GPU=.gpu
RUNS=${HISTOSEG_RUNS:-$ROOT/../runs}
DATA=${HISTOSEG_DATA:-$ROOT/../shared/data}
CARRY_LIMIT=$((64 * 1024 * 1024)) # the device tool's: the working tree and what is carried

prepare() {
  mkdir -p "$GPU"
  CARGO_TARGET_DIR=target/gpu cargo build --release --features gpu --bin histoseg
  strip -o target/gpu/histoseg.stripped target/gpu/release/histoseg
  xz -T0 -9 -c target/gpu/histoseg.stripped > "$GPU/histoseg.xz"
  if ! ls "$GPU"/libvulkan1_*.deb >/dev/null 2>&1; then
    # Debian's loader for amd64, whatever this machine's own architecture (recipe from the device tool)
    local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    mkdir -p /tmp/amd64/partial
    apt-get $o update -qq
    (cd "$GPU" && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  fi
  local pack=target/gpu-pack
  pack "$pack"
  # samples the working tree already has (www/samples, byte for byte) travel there, not twice;
  # setup puts them back in samples/
  local f name excluded=() from_tree=()
  for f in "$pack"/samples/*; do
    name=$(basename "$f")
    if cmp -s "$f" "www/samples/$name"; then excluded+=(--exclude "./samples/$name"); from_tree+=("$name"); fi
  done
  printf '%s\n' "${from_tree[@]}" > "$pack/samples-from-www.txt"
  # `prepare pretrain`: only the images, which is all pretraining reads (3.9 MB less to carry);
  # `prepare finetune`: no samples and no 2-class masks, which the instance-aware models do not
  # read (1.2 MB less)
  case ${1:-} in
    pretrain) excluded+=(--exclude ./glas-b5 --exclude ./monuseg-0.5-b2 --exclude '*/masks' --exclude '*/instances') ;;
    finetune) excluded+=(--exclude ./samples --exclude ./samples-from-www.txt --exclude ./glas/masks --exclude ./monuseg-0.5/masks) ;;
  esac
  tar -cf "$GPU/data.tar" "${excluded[@]}" -C "$pack" .
  du -ab "$GPU" | sort -k2 | awk '{printf "%8.1f MB  %s\n", $1/1e6, $2}'
  echo "carried: $(carried_mib) MiB of the 64 MiB limit (the working tree and .gpu/)"
  if [ "$(carried_bytes)" -gt "$CARRY_LIMIT" ]; then
    echo "too much to carry: the device tool refuses more than 64 MiB; leave something out of .gpu/ or the working tree" >&2
    return 1
  fi
}

# Here: any CLI build does the local work, the one without the gpu feature or the gpu one.
local_bin() {
  if [ -x target/release/histoseg ]; then echo target/release/histoseg; else echo target/gpu/release/histoseg; fi
}

# The training data of the GPU runs, into DIR (see prepare); the CPU pretraining uses it too.
pack() {
  local pack=$1
  local bin
  bin=$(local_bin)
  rm -rf "$pack" && mkdir -p "$pack"
  "$bin" --data "$DATA" dataset --dataset glas --split train --jpeg-quality 90 --out "$pack/glas"
  "$bin" --data "$DATA" dataset --dataset monuseg --split train --um-per-px 0.5 --jpeg-quality 90 --out "$pack/monuseg-0.5"
  "$bin" --data "$DATA" dataset --dataset glas --split train --boundaries 5 --jpeg-quality 90 --out "$pack/glas-b5"
  "$bin" --data "$DATA" dataset --dataset monuseg --split train --um-per-px 0.5 --boundaries 2 --jpeg-quality 90 --out "$pack/monuseg-0.5-b2"
  # the boundary sets are masks only: their images and instances are those of glas/ and monuseg-0.5/
  rm -rf "$pack/glas-b5/images" "$pack/monuseg-0.5-b2/images" "$pack/glas-b5/instances" "$pack/monuseg-0.5-b2/instances"
  mkdir -p "$pack/samples" && cp "$DATA"/samples/*.{svs,png,jpg} "$pack/samples/"
}

# Bytes that travel to the device: the working tree as the device tool counts it (tracked files
# and untracked ones git does not ignore) plus .gpu/, which is carried.
carried_bytes() {
  { git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null; find "$GPU" -type f -printf '%s\n'; } |
    awk '{s += $1} END {print s}'
}
carried_mib() { awk -v t="$(carried_bytes)" 'BEGIN {printf "%.1f", t / 1048576}'; }

# There: the Vulkan loader, the binary (target/gpu-bin/histoseg) and the data (target/gpu-data).
setup() {
  # the Vulkan loader (the driver and its ICD are on the machine)
  # the Vulkan loader and glvnd: NVIDIA's ICD (libGLX_nvidia) needs libGLdispatch to start
  if ! ldconfig -p | grep -q libvulkan.so.1 || ! ldconfig -p | grep -q libGLdispatch.so.0; then
    for f in "$GPU"/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  fi
  export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
  local bin=target/gpu-bin/histoseg
  mkdir -p target/gpu-bin target/gpu-data target/gpu-run
  if [ ! -x "$bin" ] || [ "$GPU/histoseg.xz" -nt "$bin" ]; then xz -dc "$GPU/histoseg.xz" > "$bin"; chmod +x "$bin"; fi
  if [ ! -f target/gpu-data/.unpacked ]; then
    tar -xf "$GPU/data.tar" -C target/gpu-data
    local name
    [ ! -f target/gpu-data/samples-from-www.txt ] ||
      while read -r name; do [ -z "$name" ] || cp "www/samples/$name" target/gpu-data/samples/; done < target/gpu-data/samples-from-www.txt
    touch target/gpu-data/.unpacked
  fi
}

chunk() {
  local name=$1 seconds=$2
  shift 2
  [ "${1:-}" = "--" ] && shift
  : "${OUT:?OUT must name the folder whose files come back}"
  setup
  local bin=target/gpu-bin/histoseg
  local run=$ROOT/target/gpu-run/$name
  if [ ! -d "$run/checkpoint" ] && ls "$GPU/$name.run.tar.xz"* >/dev/null 2>&1; then
    cat "$GPU/$name.run.tar.xz"* | tar -xJf - -C target/gpu-run
    echo "restored $name at $(grep -o '"step": [0-9]*' "$run/checkpoint/state.json")"
  fi
  local status=0
  (cd target/gpu-data && "$ROOT/$bin" "$@" --device gpu --run "$run" --resume --stop-after "$seconds" --log-every 60) 2>&1 | tee "$OUT/$name.log" || status=$?
  [ "$status" = 0 ] || echo "histoseg exited with $status" | tee -a "$OUT/$name.log"
  tar -cf - -C target/gpu-run "$name" | xz -T0 -3 > "$OUT/$name.run.tar.xz"
  local size
  size=$(stat -c %s "$OUT/$name.run.tar.xz")
  if [ "$size" -gt 15000000 ]; then
    split -b 15000000 -d "$OUT/$name.run.tar.xz" "$OUT/$name.run.tar.xz.part"
    rm "$OUT/$name.run.tar.xz"
  fi
  ls -l "$OUT"
  return "$status"
}

collect() {
  local name=$1 from=$2
  mkdir -p "$RUNS" "$GPU"
  cat "$from/$name.run.tar.xz"* | xz -dc | tar -xf - -C "$RUNS"
  rm -f "$GPU/$name.run.tar.xz"*
  local slim precision
  slim=$(mktemp -d /tmp/histoseg-slim.XXXX)
  for precision in f32 int8; do
    rm -rf "${slim:?}/$name"
    "$(local_bin)" slim --precision "$precision" --run "$RUNS/$name" --out "$slim/$name"
    tar -cf - -C "$slim" "$name" | xz -T0 -3 > "$GPU/$name.run.tar.xz"
    [ "$(carried_bytes)" -gt "$CARRY_LIMIT" ] || break
    echo "the $precision copy does not fit in 64 MiB with the working tree and the rest of $GPU/"
  done
  rm -rf "$slim"
  [ "$(carried_bytes)" -le "$CARRY_LIMIT" ] || echo "warning: a call that carries $GPU/ now would be refused; pack less (prepare pretrain)" >&2
  echo "slim copy for the next chunk ($precision weights): $(du -h "$GPU/$name.run.tar.xz" | cut -f1), $(carried_mib) MiB carried in all"
  [ -f "$from/$name.log" ] && cp "$from/$name.log" "$RUNS/$name/gpu-$(date +%Y%m%d-%H%M%S).log"
  echo "run $name: $(cat "$RUNS/$name/progress.txt" 2>/dev/null || echo no progress line) -> $RUNS/$name"
}

rehearse() {
  local scratch
  scratch=$(mktemp -d /tmp/histoseg-gpu-rehearsal.XXXX)
  git ls-files -z | xargs -0 -I{} cp --parents {} "$scratch/"
  cp -r "$GPU" "$scratch/"
  mkdir -p "$scratch/out"
  (cd "$scratch" && OUT="$scratch/out" bash scripts/gpu_train.sh chunk "$@")
  echo "rehearsal files: $scratch/out"
}

cmd=${1:-}
shift || true
case $cmd in
  prepare) prepare "$@" ;;
  pack) pack "$@" ;;
  setup) setup ;;
  chunk) chunk "$@" ;;
  collect) collect "$@" ;;
  rehearse) rehearse "$@" ;;
  *) sed -n '2,44p' "$0"; exit 2 ;;
esac
