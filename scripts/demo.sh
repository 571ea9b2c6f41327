#!/usr/bin/env bash
# The main job: set up, build, then import the sample writing into a fresh library on the
# embedded default models and search it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo build -p twin-cli
twin="$root/target/debug/twin"
export TWIN_DATA_DIR="${TWIN_DATA_DIR:-$root/.twin-data}"
echo "library: $TWIN_DATA_DIR"
"$twin" models import models/all-MiniLM-L6-v2
"$twin" import assets/sample-writing
"$twin" status
echo
echo '$ twin search "how do you price a small software product?"'
"$twin" search "how do you price a small software product?"
