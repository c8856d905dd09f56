#!/usr/bin/env python3
"""PyTorch's training step of the post's model split into forward (with loss read back),
backward and optimizer update: the counterpart of the `# step phases` line that
`cargo run --release --example bench -- train` prints.

With `--autocast bf16` the forward pass runs under `torch.autocast("cpu",
dtype=torch.bfloat16)` (weights and optimizer state stay f32, as ours): the reference
for `bench train --precision bf16`, with a `RESULT torch-train-bf16-b<N>` line.

Usage: python step_phases.py PATH/TO/torch_reference.py [--threads 2] [--batch-size 32] [--steps 5] [--autocast bf16]
"""
import argparse, contextlib, importlib.util, statistics, time
import torch

p = argparse.ArgumentParser()
p.add_argument("reference")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--autocast", choices=["bf16"])
a = p.parse_args()
spec = importlib.util.spec_from_file_location("reference", a.reference)
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)
torch.set_num_threads(a.threads)
torch.manual_seed(0)
model = reference.seed_alexnet(256)
x, y = torch.randn(a.batch_size, 3, 227, 227), torch.randint(0, 256, (a.batch_size,))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
model.train()
forward_context = (
    (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if a.autocast else contextlib.nullcontext
)
phases, steps = [[], [], []], []
for step in range(3 + a.steps):
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    with forward_context():
        output = model(x)
    loss = torch.nn.functional.nll_loss(output.float(), y)
    loss.item()
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    t3 = time.perf_counter()
    if step >= 3:
        for phase, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2)):
            phase.append(seconds * 1e3)
        steps.append(t3 - t0)
forward, backward, update = (statistics.median(p) for p in phases)
print(f"# torch step phases (median ms{', autocast ' + a.autocast if a.autocast else ''}): "
      f"forward {forward:.0f}, backward {backward:.0f}, optimizer update {update:.0f}")
if a.autocast:
    reference.report(f"torch-train-{a.autocast}-b{a.batch_size}", a.batch_size, steps)
