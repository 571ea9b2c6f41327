#!/usr/bin/env bash
# Fuzz Twin's readers of untrusted input with libFuzzer (cargo-fuzz, nightly).
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET…]     default: 60 s, every target
# Targets: parse_markdown parse_text parse_html parse_docx parse_pdf export gguf_header
# fts_query chunking (bodies in crates/twin-core/src/fuzzing.rs; seeds in fuzz/seeds/).
# Each run starts from the seeds plus what earlier runs found (fuzz/corpus/, not committed);
# a crash is saved under fuzz/artifacts/<target>/ and ends the script with its status.
# `cargo test` runs every target over the seeds and their mutations on stable, so CI needs
# neither nightly nor libFuzzer; this script is for the long runs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(parse_markdown parse_text parse_html parse_docx parse_pdf export gguf_header fts_query chunking)
fi
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo +nightly install cargo-fuzz --locked
. "$root/scripts/cpu-flags.sh"
# No sanitizer: the code under test is safe Rust (and C/C++ libraries built without ASan);
# what we hunt is panics, aborts, stack overflows, hangs and memory blow-ups.
cargo +nightly fuzz build -s none
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== $t: ${seconds}s"
  # -rss_limit_mb: a reader that needs over 2 GB for a small input is a finding;
  # -timeout: one input taking over 10 s is a hang.
  rc=0
  cargo +nightly fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
    -print_final_stats=1 >"corpus/$t.log" 2>&1 || rc=$?
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|^SUMMARY|panicked at|ERROR: libFuzzer" "corpus/$t.log" || true
  if [ "$rc" != 0 ]; then
    echo "!! $t failed (exit $rc); see fuzz/corpus/$t.log and fuzz/artifacts/$t/"
    status=1
  fi
done
exit $status
