#!/usr/bin/env bash
# Builds, on a development machine, what scripts/gpu-check.sh runs on a lent GPU machine
# (which has PyTorch 2.11.0 but no Rust toolchain and no network): `bench` with the tch
# backend, linked against the torch 2.11.0 wheel, stripped, plus a copy of the
# reference. Everything lands in gpu/ (git-ignored, about 20 MB), which the device
# tool carries:  run(command="bash scripts/gpu-check.sh", carry=["gpu"]).
#
#   scripts/prepare-gpu-check.sh /path/to/torch_reference.py
#
# The first run installs torch 2.11.0 into $TORCH_VENV (default /tmp/torch211, about
# 7 GB with its CUDA libraries) and builds into target/gpu (about 20 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
reference=${1:?path to torch_reference.py}
venv=${TORCH_VENV:-/tmp/torch211}
if ! "$venv/bin/python" -c 'import torch; assert torch.__version__.startswith("2.11.0")' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check torch==2.11.0
fi
# burn-tch 0.22.1 expects torch 2.9.0; the 2.11 C++ API it uses is unchanged.
PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" LIBTORCH_USE_PYTORCH=1 LIBTORCH_BYPASS_VERSION_CHECK=1 \
  CARGO_TARGET_DIR=target/gpu cargo build --release --example bench --features tch
mkdir -p gpu
cp target/gpu/release/examples/bench gpu/bench
strip gpu/bench
cp "$reference" gpu/torch_reference.py
torch_lib="$("$venv/bin/python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
# A short CPU run proves the binary loads torch 2.11's libraries.
LD_LIBRARY_PATH="$torch_lib" gpu/bench train --device tch-cpu --size 67 --batch-size 4 --steps 1 --reps 1 2>&1 | tail -1
du -sh gpu
