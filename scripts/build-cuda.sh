#!/usr/bin/env bash
# Builds mlsign with the `cuda` feature (the GPU path of `mlsign behave --device cuda`), also on a
# machine with no CUDA toolkit and no GPU: nvcc, cicc, headers and the CUDA 13 runtime libraries
# come from NVIDIA's PyPI wheels in a venv.
#
#   scripts/build-cuda.sh            # release build → target/release/mlsign
#   scripts/build-cuda.sh --test     # then the CPU-vs-CUDA behave tests (tests/cli/support/device.rs)
#
# candle links the CUDA libraries at build time (cudarc `dynamic-linking`), so the binary needs
# libcuda.so.1 (the NVIDIA driver) and the CUDA 13 libraries (cublas, cublasLt, curand, nvrtc,
# cudart) to start at all, even for --device cpu. The script prints the LD_LIBRARY_PATH to use.
# Without a driver it links against a stub libcuda (what the toolkit's lib/stubs is for) whose
# every entry point returns CUDA_ERROR_NO_DEVICE; it is never on the library path of a machine
# that has the real driver.
#
# Env: CUDA_COMPUTE_CAP (default 90: H100/H200; 80 A100, 89 L4/RTX 40xx), MLSIGN_CUDA_VENV
# (default .venv-cuda). With nvcc on PATH (a system toolkit) the wheels are not used.
set -euo pipefail
cd "$(dirname "$0")/.."
# The toolkit must not be newer than the CUDA version of the driver that will run the binary
# (nvidia-smi's "CUDA Version"): PTX from a newer nvcc is refused by an older driver.
# MLSIGN_CUDA_TOOLKIT=13.4 (default: the newest cudarc 0.19 / candle 0.11 knows) or 13.0.
case "${MLSIGN_CUDA_TOOLKIT:-13.4}" in
  13.4) wheels=(nvidia-cuda-nvcc==13.4.92 nvidia-nvvm==13.4.92 nvidia-cuda-runtime==13.4.92
    nvidia-cuda-crt==13.4.92 nvidia-cuda-cccl==13.3.5.0.6 nvidia-cuda-nvrtc==13.4.92
    nvidia-curand==10.4.5.25 nvidia-cublas==13.10.0.20) ;;
  13.0) wheels=(nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.96
    nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88
    nvidia-curand==10.4.0.35 nvidia-cublas==13.0.2.14) ;;
  *) echo "MLSIGN_CUDA_TOOLKIT must be 13.4 or 13.0" >&2; exit 2 ;;
esac

# grep -c reads all of ldconfig's output: with pipefail, grep -q could end it by SIGPIPE.
have_driver=$(ldconfig -p 2>/dev/null | grep -c 'libcuda\.so\.1 ' || true)
if ! command -v nvcc >/dev/null; then
  venv=${MLSIGN_CUDA_VENV:-.venv-cuda}
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${wheels[@]}"
  cu="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia/cu13"
  # Wheels do not keep every executable bit, nor the unversioned names the linker looks for.
  chmod +x "$cu"/bin/* "$cu"/nvvm/bin/*
  for lib in cublas cublasLt cudart curand nvrtc; do
    real=$(cd "$cu/lib" && ls "lib$lib.so."* | grep -v builtins | head -1)
    ln -sf "$real" "$cu/lib/lib$lib.so"
  done
  export PATH="$cu/bin:$cu/nvvm/bin:$PATH" CUDA_HOME="$cu" CUDA_PATH="$cu" NVCC="$cu/bin/nvcc"
  runtime_libs="$cu/lib"
  if [ "$have_driver" = 0 ]; then
    # No driver: a stub from the entry points cudarc declares, in lib/stubs where cudarc's build
    # script looks, and on the runtime path only of this driverless machine.
    if [ ! -e "$cu/lib/stubs/libcuda.so.1" ]; then
      cudarc=$(cargo metadata --locked --format-version 1 --features cuda | python3 -c \
        'import json, os, sys; print(next(os.path.dirname(p["manifest_path"]) for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc"))')
      mkdir -p "$cu/lib/stubs"
      grep -ohE '\bfn cu[A-Za-z0-9_]+\(' "$cudarc/src/driver/sys/mod.rs" | sed 's/^fn //; s/($//' \
        | sort -u | awk '{ print "int " $1 "(void) { return 100; }" }' >"$cu/lib/stubs/libcuda-stub.c"
      cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$cu/lib/stubs/libcuda.so" "$cu/lib/stubs/libcuda-stub.c"
      ln -sf libcuda.so "$cu/lib/stubs/libcuda.so.1"
    fi
    runtime_libs="$runtime_libs:$cu/lib/stubs"
    echo "no NVIDIA driver here: the binary will start with a stub libcuda and report no CUDA device"
  fi
else
  # A system toolkit links against its own lib64/stubs; the binary then starts only where the
  # driver is.
  runtime_libs=""
fi
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
nvcc --version | tail -1

features=cuda
if command -v protoc >/dev/null; then features=cuda,onnx; fi
cargo build --release --locked --features "$features"
echo "built target/release/mlsign with features $features for compute capability $CUDA_COMPUTE_CAP"
[ -z "$runtime_libs" ] || echo "run it with LD_LIBRARY_PATH=$runtime_libs"
if [ "${1:-}" = "--test" ]; then
  # --release: the same build as above, not a second one.
  LD_LIBRARY_PATH="$runtime_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" cargo test --release \
    --locked --features "$features" --test cli cuda_device \
    -- --nocapture
fi
