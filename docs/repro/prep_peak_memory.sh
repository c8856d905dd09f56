#!/usr/bin/env bash
# Peak memory of preprocessing with 100-megapixel JPEGs (docs/benchmarks.md,
# "Preprocessing: peak memory"). Needs a Python with numpy and pillow:
#   python3 -m venv /tmp/pil && /tmp/pil/bin/pip install numpy pillow
#   bash docs/repro/prep_peak_memory.sh /tmp/pil/bin/python
set -euo pipefail
python="${1:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/raw/001.big" "$work/raw/002.big"
"$python" - "$work/raw" <<'PY'
import sys
import numpy as np
from PIL import Image
root = sys.argv[1]
rng = np.random.default_rng(0)
# 10000 x 10000 = 100 megapixels of smooth content plus noise (about 28 MB as JPEG q90).
y, x = np.mgrid[0:10000, 0:10000].astype(np.float32)
for k, cls in enumerate(["001.big", "002.big"]):
    for i in range(2):
        img = np.stack([np.sin(x / (50 + 10 * i + k)) * 100 + 128,
                        np.cos(y / (70 + k)) * 100 + 128,
                        (x + y) / 80 % 256], axis=-1)
        img += rng.normal(0, 8, img.shape).astype(np.float32)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(f"{root}/{cls}/big{i}.jpg", quality=90)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(f"{root}/{cls}/small{i}.jpg", quality=90)
PY
cargo build --release --example preprocess_caltech
bin="${CARGO_TARGET_DIR:-target}/release/examples/preprocess_caltech"
for jobs in 1 2; do
  for run in 1 2 3; do
    rm -rf "$work/out"
    /usr/bin/time -v "$bin" --input "$work/raw" --output "$work/out" --size 256 --jobs "$jobs" \
      2> "$work/time.log" > /dev/null
    echo "jobs $jobs run $run: $(awk '/Maximum resident/ {print $6}' "$work/time.log") kB peak RSS"
  done
done
