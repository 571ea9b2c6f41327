#!/usr/bin/env bash
# Build Twin with `--features cuda` on a machine without a system CUDA toolkit: assemble one from
# NVIDIA's CUDA 13.0 wheels on PyPI (nvcc, cudart, cuBLAS, cuRAND, NVRTC, CCCL), add a stub
# libcuda for linking (the real one comes with the driver), then build for one GPU architecture.
#
#   scripts/cuda-from-wheels.sh [toolkit-dir] [compute-capability]     # defaults: ~/.cache/twin-cuda13, 90
#
# This is how the H200 numbers in the README were produced (the binary runs wherever the NVIDIA
# driver and CUDA 13 libraries are installed). CI never uses it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tk="${1:-$HOME/.cache/twin-cuda13}"
arch="${2:-90}"
wheels="$tk/wheels"
mkdir -p "$wheels"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux_2_27_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  -d "$wheels" "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-runtime==13.0.*" "nvidia-cublas==13.0.*" \
  "nvidia-cuda-cccl==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*" \
  "nvidia-curand==10.4.0.*" "nvidia-cuda-nvrtc==13.0.*"
unpacked="$tk/unpacked"
rm -rf "$unpacked" && mkdir -p "$unpacked"
for w in "$wheels"/*.whl; do python3 -m zipfile -e "$w" "$unpacked"; done
cuda="$tk/cuda"
rm -rf "$cuda" && cp -a "$unpacked/nvidia/cu13" "$cuda"
chmod +x "$cuda"/bin/* "$cuda"/nvvm/bin/* 2>/dev/null || true
ln -sfn lib "$cuda/lib64"
mkdir -p "$cuda/targets" && ln -sfn "$cuda" "$cuda/targets/x86_64-linux"
for f in "$cuda"/lib/*.so.*; do
  base="${f%%.so.*}.so"
  [ -e "$base" ] || ln -s "$(basename "$f")" "$base"
done
# llama-cpp-sys-2 links cuBLAS statically on Linux; the wheels ship shared libraries only, which
# cudarc links anyway, so empty archives satisfy the static names.
echo > "$tk/empty.c" && cc -c "$tk/empty.c" -o "$tk/empty.o"
for n in cublas_static cublasLt_static culibos; do ar rcs "$cuda/lib/lib$n.a" "$tk/empty.o"; done
# A libcuda.so exporting the driver API's names, only for the linker (soname libcuda.so.1).
mkdir -p "$cuda/lib/stubs"
cc -E -P -I"$cuda/include" "$cuda/include/cuda.h" | grep -oP '\bcu[A-Z]\w*(?=\s*\()' | sort -u |
  awk '{print "void "$1"(void){}"}' > "$tk/cuda_stub.c"
cc -shared -fPIC -o "$cuda/lib/stubs/libcuda.so" "$tk/cuda_stub.c" -Wl,-soname,libcuda.so.1

export PATH="$cuda/bin:$PATH" CUDA_PATH="$cuda" CUDA_ROOT="$cuda" CUDA_TOOLKIT_ROOT_DIR="$cuda"
export CUDACXX="$cuda/bin/nvcc" CUDAARCHS="$arch" CUDA_COMPUTE_CAP="$arch"
export LIBRARY_PATH="$cuda/lib:$cuda/lib/stubs"
export RUSTFLAGS="-C target-cpu=x86-64-v3 -L native=$cuda/lib -L native=$cuda/lib/stubs"
export GGML_CUDA_FA="${GGML_CUDA_FA:-OFF}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target-cuda}"
cd "$root"
cargo build --release -p twin-cli --features cuda
echo "built $CARGO_TARGET_DIR/release/twin; run it with LD_LIBRARY_PATH pointing at the CUDA 13 libraries"
