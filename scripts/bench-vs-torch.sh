#!/usr/bin/env bash
# Runs each benchmark of examples/bench/ next to the PyTorch/PIL/albumentations
# reference (torch_reference.py from the project's shared bench folder), in the same
# run on the same machine, and prints the RESULT lines side by side.
#
#   scripts/bench-vs-torch.sh /path/to/python-with-torch /path/to/torch_reference.py [features] [device]
#
# For libtorch: features `tch`, device `tch-cpu`, with the build and run environment of
# docs/benchmarks.md (LIBTORCH_USE_PYTORCH=1 and LD_LIBRARY_PATH=<site-packages>/torch/lib).
#
# The python environment: python3 -m venv /tmp/refenv &&
#   /tmp/refenv/bin/pip install torch==2.9.0 albumentations pillow
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:?python with torch}
reference=${2:?path to torch_reference.py}
features=${3:-}
device=${4:-}
on_device=(${device:+--device "$device"})
cargo build --release --example bench --example preprocess_caltech ${features:+--features "$features"}
bench=target/release/examples/bench
prepared=target/bench/prepared-256

run() { echo "\$ $*" >&2; "$@" 2>&1 | grep -E '^(RESULT|# |conv|weight)' ; }

run $bench prep --jobs 1
run $bench prep --jobs 2
run "$python" "$reference" prep target/bench/prep-input/001.bench --out target/bench/pil-out
# The CPU every figure below was measured on.
lscpu | grep -E '^(Model name|CPU family|Model):' | sed 's/^/# cpu: /'
# The vector extensions that decide which kernels gemm and oneDNN pick.
flags=$(grep -m1 '^flags' /proc/cpuinfo | grep -o -w -E 'avx2|fma|avx512[a-z0-9_]*|amx[a-z0-9_]*' | tr '\n' ' ')
echo "# cpu flags: $flags"
# Without AVX-512 BF16 or AMX, PyTorch's bf16 runs at about 1 GFLOP/s (minutes a product).
case "$flags" in *avx512_bf16* | *amx_bf16*) bf16=yes ;; *) bf16= ;; esac
# The 2 cores' matrix-multiply peak, ours and PyTorch's, for the step's FLOPs.
run $bench matmul "${on_device[@]}"
run "$python" docs/repro/matmul_peak.py --dtypes "f32${bf16:+,bf16}"
run $bench augment
run "$python" "$reference" augment
# The machine's speed drifts between minutes: alternate ours and the reference.
for round in 1 2; do
  run $bench train --batch-size 32 "${on_device[@]}"
  run "$python" "$reference" train --batch-size 32 --threads 2
  case "$device" in
    # flex or libtorch with Burn's own convolution and BatchNorm gradients (and SGD), for
    # the difference the native kernels make.
    "" | flex* | tch*) run $bench train --batch-size 32 "${on_device[@]}" --no-native ;;
  esac
done
run "$python" docs/repro/step_phases.py "$reference"
run $bench conv "${on_device[@]}"
run "$python" docs/repro/conv_weight_grad.py
# bf16 compute against PyTorch's autocast step, where the CPU has bf16 arithmetic.
if [ -n "$bf16" ]; then
  run $bench train --batch-size 32 --precision bf16 --steps 5 "${on_device[@]}"
  run "$python" docs/repro/step_phases.py "$reference" --autocast bf16
fi
run $bench infer --batch-size 64 "${on_device[@]}"
run "$python" "$reference" infer --batch-size 64 --threads 2
if [ ! -f "$prepared/train.csv" ]; then
  [ -d data/demo/raw ] || target/release/examples/preprocess_caltech --demo >/dev/null
  target/release/examples/preprocess_caltech --input data/demo/raw --output "$prepared" --size 256 --overwrite >/dev/null
fi
run $bench loader --data "$prepared" --batch-size 32
for round in 1 2; do
  run $bench epoch --data "$prepared" --batch-size 32 "${on_device[@]}"
  run "$python" "$reference" epoch "$prepared" --batch-size 32 --workers 2 --threads 2
done
