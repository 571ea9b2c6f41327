#!/usr/bin/env bash
# Every test: set up, check formatting and lints, then run all unit, integration and end-to-end
# tests on the real models.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/setup.sh
. scripts/cpu-flags.sh
# One clean build, as in CI: incremental caches would only add gigabytes to the target folder.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy
# The front end's types are generated from the Rust structs the app's commands return (ts-rs,
# into ui/src/bindings), then the front end is type-checked against them and built: a field
# renamed in Rust and not in the UI fails here. The app embeds the built front end.
# `--workspace --lib`, not `-p twin-core`: Cargo unifies dependency features over the packages
# a command selects, so `-p` built 132 crates a second time with other features (llama.cpp's
# C++ among them). The app has no library target, so nothing of it is built before its front
# end.
cargo test --workspace --lib export_bindings --quiet
npm --prefix ui run build --silent
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# --nocapture: the quality tests print the numbers they measure (recall, MRR, cosine, timings).
# The app's end-to-end test (tests/app_e2e.rs) opens a real WebKit window under Xvfb through
# tauri-driver; screenshots land in target/e2e-screenshots/.
# The shells set this at start (`train::configure_process`); the in-process training tests
# get it here: candle's elementwise pool would spin on the cores gemm needs.
export CANDLE_NUM_THREADS="${CANDLE_NUM_THREADS:-1}"
cargo test --workspace -- --nocapture
