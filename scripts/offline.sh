#!/usr/bin/env bash
# Run a command with no network but loopback (a fresh network namespace), to prove that Twin
# phones nowhere: `scripts/offline.sh scripts/demo.sh`, `scripts/offline.sh cargo test …`.
# Needs root or unprivileged user namespaces (`unshare -rn`). The build must already be done
# (cargo cannot fetch crates offline); the local Hugging Face–layout test servers use loopback.
set -euo pipefail
if [ $# -eq 0 ]; then
  echo "usage: scripts/offline.sh COMMAND [ARG…]" >&2
  exit 2
fi
if [ "$(id -u)" = 0 ]; then ns=(unshare -n); else ns=(unshare -rn); fi
exec "${ns[@]}" -- bash -c '
  ip link set lo up 2>/dev/null || true
  # Anything that tries the network now fails fast instead of waiting on DNS.
  export CARGO_NET_OFFLINE=true
  if getent hosts huggingface.co >/dev/null 2>&1; then echo "offline.sh: the network is still reachable" >&2; exit 1; fi
  exec "$@"
' offline "$@"
