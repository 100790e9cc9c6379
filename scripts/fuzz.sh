#!/usr/bin/env bash
# Runs every cargo-fuzz target (tests/fuzz) for SECONDS each (default 600), two at a time, and
# prints the executions libFuzzer reports. Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). New interesting inputs go to target/fuzz-corpus/<target>/ (not
# committed: `cargo +nightly fuzz cmin` them into tests/fuzz/corpus/<target>/ to keep them);
# crashes go to tests/fuzz/artifacts/<target>/, and the log of each run to runs/fuzz/<target>.log.
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-600}
TARGETS=(image tiff model_file export)
cargo +nightly fuzz build --fuzz-dir tests/fuzz || exit 1
mkdir -p runs/fuzz
run() {
  local t=$1 extra=()
  # the export target reads up to 3 + 48*48 bytes (a 48x48 mask); the others' seeds set the length
  [ "$t" = export ] && extra=(-max_len=2307)
  mkdir -p "target/fuzz-corpus/$t"
  cargo +nightly fuzz run --fuzz-dir tests/fuzz "$t" "target/fuzz-corpus/$t" "tests/fuzz/corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -timeout=60 -print_final_stats=1 "${extra[@]}" > "runs/fuzz/$t.log" 2>&1
  echo "$t: exit status $?"
}
run image & run tiff & wait
run model_file & run export & wait
status=0
for t in "${TARGETS[@]}"; do
  runs=$(grep -oE "stat::number_of_executed_units: [0-9]+" "runs/fuzz/$t.log" | grep -oE "[0-9]+$" || echo "?")
  cov=$(grep -oE "cov: [0-9]+" "runs/fuzz/$t.log" | tail -1)
  crash=$(grep -lE "ERROR: libFuzzer|panicked|deadly signal|out-of-memory" "runs/fuzz/$t.log" >/dev/null && echo "CRASH (see runs/fuzz/$t.log)" || echo "no crash")
  [ "$crash" = "no crash" ] || status=1
  echo "$t: $runs executions in ${SECONDS_EACH} s, $cov, $crash"
done
exit $status
