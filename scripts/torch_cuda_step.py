#!/usr/bin/env python3
"""PyTorch's training step or forward pass of the post's model on a CUDA GPU: the
reference for `bench train|infer --device tch-cuda:0` in the same run.

f32 runs in float32. bf16 and f16 use torch.autocast, and f16 adds a GradScaler. That is
PyTorch's mixed precision. Ours runs the whole forward and backward pass in the half
type, with f32 master weights and, for f16, dynamic loss scaling.

Usage: python torch_cuda_step.py PATH/TO/torch_reference.py train|infer
           [--batch-size 128] [--precision f32|bf16|f16] [--steps 20] [--classes 256]
The last line is RESULT <name> <images/s> (median of the timed steps).
"""
import argparse, importlib.util, statistics, sys, time
import torch

p = argparse.ArgumentParser()
p.add_argument("reference")
p.add_argument("mode", choices=["train", "infer"])
p.add_argument("--batch-size", type=int, default=128)
p.add_argument("--precision", choices=["f32", "bf16", "f16"], default="f32")
p.add_argument("--steps", type=int, default=20)
p.add_argument("--classes", type=int, default=256)
p.add_argument("--size", type=int, default=227)
p.add_argument("--device", default="cuda:0", help="cpu runs the same code here, for a check")
a = p.parse_args()
device = torch.device(a.device)
if device.type == "cuda" and not torch.cuda.is_available():
    sys.exit("error: torch sees no CUDA device")
spec = importlib.util.spec_from_file_location("reference", a.reference)
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)

torch.manual_seed(0)
model = reference.seed_alexnet(a.classes).to(device)
x = torch.randn(a.batch_size, 3, a.size, a.size, device=device)
y = torch.randint(0, a.classes, (a.batch_size,), device=device)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
half = {"f32": None, "bf16": torch.bfloat16, "f16": torch.float16}[a.precision]
scaler = torch.amp.GradScaler(device.type, enabled=a.precision == "f16")


def synchronize():
    if device.type == "cuda":
        synchronize()



model.train(a.mode == "train")
rates = []
for step in range(5 + a.steps):
    synchronize()
    start = time.perf_counter()
    with torch.autocast(device.type, dtype=half or torch.float32, enabled=half is not None):
        if a.mode == "train":
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.nll_loss(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            with torch.no_grad():
                model(x)
    synchronize()
    if step >= 5:
        rates.append(a.batch_size / (time.perf_counter() - start))
rates.sort()
name = f"torch-{device.type}-{a.mode}-b{a.batch_size}-{a.precision}"
memory = (f"; peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
          if device.type == "cuda" else "")
print(f"# {name}: min {rates[0]:.1f} max {rates[-1]:.1f} images/s over {len(rates)} steps{memory}",
      file=sys.stderr)
print(f"RESULT {name} {statistics.median(rates):.2f}")
