# Sourced by demo.sh and test.sh. .cargo/config.toml builds for x86-64-v3 (AVX2, FMA, F16C,
# BMI2), which llama.cpp needs for speed; a CPU without those features builds for plain x86-64.
if [ "$(uname -m)" = x86_64 ]; then
  for f in avx2 fma f16c bmi2; do
    if ! grep -q -w "$f" /proc/cpuinfo 2>/dev/null; then
      echo "this CPU lacks $f: building for baseline x86-64 (slower inference)" >&2
      export RUSTFLAGS="-C target-cpu=x86-64"
      break
    fi
  done
fi
