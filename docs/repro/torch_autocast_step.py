#!/usr/bin/env python3
"""PyTorch's training step of the post's model under `torch.autocast("cpu",
dtype=torch.bfloat16)`: the reference for `bench train --precision bf16`. The model,
data, loss and SGD are torch_reference.py's `train` (weights and optimizer state stay
f32, as ours); only the forward pass runs under autocast.

Usage: python torch_autocast_step.py PATH/TO/torch_reference.py [--threads 2] [--batch-size 32]
"""
import argparse, importlib.util, time
import torch

p = argparse.ArgumentParser()
p.add_argument("reference")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--steps", type=int, default=10)
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
times = []
for step in range(3 + a.steps):
    start = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = model(x)
    loss = torch.nn.functional.nll_loss(output.float(), y)
    loss.backward()
    opt.step()
    loss.item()
    if step >= 3:
        times.append(time.perf_counter() - start)
reference.report(f"torch-train-bf16-b{a.batch_size}", a.batch_size, times)
