#!/usr/bin/env python3
"""The machine's matrix-multiply peak as PyTorch reaches it: `torch.mm` of square
matrices in GFLOP/s (2·n³ a product), f32 and bf16, the counterpart of
`cargo run --release --example bench -- matmul [--precision bf16]`.

Usage: python matmul_peak.py [--threads 2] [--sizes 1024,2048,4096] [--reps 5] [--dtypes f32,bf16]

bf16 is slow on a CPU without AVX-512 BF16 or AMX (minutes at 4096): `--dtypes f32` there.
"""
import argparse, statistics, time
import torch

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--sizes", default="1024,2048,4096")
p.add_argument("--reps", type=int, default=5)
p.add_argument("--dtypes", default="f32,bf16")
a = p.parse_args()
torch.set_num_threads(a.threads)
for name in a.dtypes.split(","):
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[name]
    for n in (int(s) for s in a.sizes.split(",")):
        x, y = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        torch.mm(x, y)
        rates = []
        for _ in range(a.reps):
            start = time.perf_counter()
            torch.mm(x, y)
            rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
        print(f"# torch.mm {n}x{n} {name}: {statistics.median(rates):.0f} GFLOP/s")
    print(f"RESULT torch-matmul-{name}-{n} {statistics.median(rates):.1f}")
