#!/bin/bash -eu
# Runs .clusterfuzzlite/build.sh the way the builder image does, without
# Docker: a clean checkout under $SRC/osc-harness, the outputs in $OUT, and
# then every built target over its own seed corpus (what `check_build` asks
# of a build: each target starts, loads its seeds and runs without a crash).
#
# The builder image has nightly Rust; on a stable toolchain the sanitizer
# flags that cargo-fuzz passes need RUSTC_BOOTSTRAP=1, which this script
# sets only for the build.
#
#   bash .clusterfuzzlite/check-local.sh [RUNS]    (default: 20000 inputs per target)
runs=${1:-20000}
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SRC="$work/src" OUT="$work/out"
mkdir -p "$SRC" "$OUT"
git clone -q "$repo" "$SRC/osc-harness"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
RUSTC_BOOTSTRAP=1 bash "$SRC/osc-harness/.clusterfuzzlite/build.sh"

status=0
for src in "$SRC"/osc-harness/fuzz/fuzz_targets/*.rs; do
  name=$(basename "${src%.*}")
  for want in "$name" "$name.dict"; do
    [ -f "$OUT/$want" ] || { echo "MISSING $OUT/$want"; status=1; }
  done
  [ -f "$OUT/$name" ] || continue
  corpus="$work/corpus/$name"
  mkdir -p "$corpus"
  if [ -f "$OUT/${name}_seed_corpus.zip" ]; then
    unzip -q "$OUT/${name}_seed_corpus.zip" -d "$corpus"
  fi
  seeds=$(find "$corpus" -type f | wc -l)
  if "$OUT/$name" -dict="$OUT/$name.dict" -runs="$runs" "$corpus" >"$work/$name.log" 2>&1; then
    echo "ok      $name ($seeds seeds, $runs runs)"
  else
    echo "FAILED  $name"
    tail -20 "$work/$name.log"
    status=1
  fi
done
exit $status
