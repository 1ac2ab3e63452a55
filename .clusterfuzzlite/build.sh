#!/bin/bash -eu
# Builds every cargo-fuzz target in fuzz/ and hands each to the fuzzing
# infrastructure with its seed corpus and the shared dictionary.
cd "$SRC/osc-harness"

# The builder's RUSTFLAGS carry the sanitizer and coverage flags; -O keeps
# the targets fast, --debug-assertions keeps the overflow checks that the
# targets' invariants rely on.
cargo fuzz build -O --debug-assertions

out_dir=fuzz/target/x86_64-unknown-linux-gnu/release
for src in fuzz/fuzz_targets/*.rs; do
  name=$(basename "${src%.*}")
  cp "$out_dir/$name" "$OUT/"
  if [ -d "fuzz/corpus/$name" ] && [ -n "$(ls -A "fuzz/corpus/$name")" ]; then
    (cd "fuzz/corpus/$name" && zip -q -r "$OUT/${name}_seed_corpus.zip" .)
  fi
  cp fuzz/dict/osc.dict "$OUT/$name.dict"
done
