#!/usr/bin/env bash
# The main job: set up, build, then import the sample writing into a library on the embedded
# default models, search it, train the voice adapter on it, and draft a LinkedIn post in the
# sample author's voice with that adapter.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/setup.sh
. scripts/cpu-flags.sh
# Resolved with the whole workspace (as the tests are), so demo and tests share one build of the dependencies.
cargo build --workspace --bin twin
twin="$root/target/debug/twin"
export TWIN_DATA_DIR="${TWIN_DATA_DIR:-$root/.twin-data}"
echo "library: $TWIN_DATA_DIR"
# A fresh data folder sets itself up on first use: the embedding model converted to GGUF, the
# chat model rewritten with 8-bit weights (CPU-friendly; see README, "Speed").
"$twin" import assets/sample-writing
"$twin" status
echo
echo '$ twin search "how do you price a small software product?"'
"$twin" search "how do you price a small software product?"
echo
# The twin is the fine-tuned model: a voice adapter trained on the sample writing (the plan
# first, then about five minutes on 2 cores with progress). A re-run reuses the adapter.
adapters="$("$twin" adapters list)"
if [[ "$adapters" != *"in use"* ]]; then
  echo
  echo '$ twin dataset build --author Nell'
  "$twin" dataset build --author Nell
  echo
  echo '$ twin train'
  "$twin" train --dry-run
  "$twin" train
fi
echo
echo '$ twin draft --format linkedin "how to price a small software product"'
"$twin" draft --format linkedin --author Nell "how to price a small software product"
