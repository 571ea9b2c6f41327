#!/usr/bin/env bash
# Every test: set up, check formatting and lints, then run all unit, integration and end-to-end
# tests on the real models.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/setup.sh
. scripts/cpu-flags.sh
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# --nocapture: the quality tests print the numbers they measure (recall, MRR, cosine, timings).
cargo test --workspace -- --nocapture
