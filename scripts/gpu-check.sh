#!/usr/bin/env bash
# The GPU figures for docs/benchmarks.md, in one short run on a lent GPU machine: our
# training step and forward pass on libtorch CUDA (f32, bf16, f16), each next to
# PyTorch's in the same run. Needs gpu/ from scripts/prepare-gpu-check.sh; with the
# device tool:  run(command="bash scripts/gpu-check.sh", carry=["gpu"], timeout_s=480).
# Writes the log to $OUT/gpu-check.log when $OUT is set.
set -uo pipefail
cd "$(dirname "$0")/.."
log="${OUT:-/tmp}/gpu-check.log"
python=$(command -v python3)
torch_lib="$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
run() { echo "\$ $*"; timeout 120 "$@" 2>&1 | grep -E '^(RESULT|# |error|torch|NVIDIA|name)'; }
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$python" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))'
  for precision in f32 bf16 f16; do
    run gpu/bench train --device tch-cuda:0 --batch-size 128 --precision "$precision" --steps 20
    run "$python" scripts/torch_cuda_step.py gpu/torch_reference.py train --batch-size 128 --precision "$precision"
  done
  for precision in f32 bf16; do
    run gpu/bench infer --device tch-cuda:0 --batch-size 256 --precision "$precision" --steps 20
    run "$python" scripts/torch_cuda_step.py gpu/torch_reference.py infer --batch-size 256 --precision "$precision"
  done
  run gpu/bench conv --device tch-cuda:0
} 2>&1 | tee "$log"
