#!/bin/bash
# The page's wasm size with and without a cargo feature, through the same steps as Trunk's build
# (cargo, wasm-bindgen --target web, wasm-opt -Oz). Usage: scripts/wasm_size.sh [FEATURE ...]
# (default: few-shot). Prints raw and gzip -9 bytes of each build.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
out=$(mktemp -d)
for features in "" "${@:-few-shot}"; do
  cargo build --quiet --release --target wasm32-unknown-unknown --lib ${features:+--features "$features"}
  name=${features:-default}
  wasm-bindgen --target web --out-dir "$out/$name" --out-name histoseg target/wasm32-unknown-unknown/release/histoseg.wasm
  wasm-opt -Oz --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
    "$out/$name/histoseg_bg.wasm" -o "$out/$name.wasm"
  gzip -9 -k "$out/$name.wasm"
  echo "$name: $(stat -c %s "$out/$name.wasm") bytes, gzip -9 $(stat -c %s "$out/$name.wasm.gz") bytes"
done
rm -rf "$out"
