"""The reference for `bench checkpoint`: torch.save of the post's model (BatchNorm
AlexNet, 257 classes) and its SGD momentum, written as timm's CheckpointSaver does (a
temporary file, then os.replace) plus the fsync our store does; median of 5.

Usage: python scripts/checkpoint_reference.py [DIR]   (torch 2.9.0; DIR default /tmp/ckpt_ref)
"""
import os, sys, time, statistics, torch, torch.nn as nn
torch.manual_seed(0)
def alexnet_bn(classes=257):
    return nn.Sequential(
        nn.Conv2d(3,96,11,4), nn.BatchNorm2d(96), nn.ReLU(), nn.MaxPool2d(3,2),
        nn.Conv2d(96,256,5,padding=2), nn.BatchNorm2d(256), nn.ReLU(), nn.MaxPool2d(3,2),
        nn.Conv2d(256,384,3,padding=1), nn.BatchNorm2d(384), nn.ReLU(),
        nn.Conv2d(384,384,3,padding=1), nn.BatchNorm2d(384), nn.ReLU(),
        nn.Conv2d(384,256,3,padding=1), nn.BatchNorm2d(256), nn.ReLU(), nn.MaxPool2d(3,2),
        nn.Flatten(), nn.Linear(256*6*6,4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096,4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096,classes))
m = alexnet_bn()
print("parameters", sum(p.numel() for p in m.parameters()))
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
x = torch.randn(2,3,227,227); y = torch.tensor([0,1])
nn.functional.cross_entropy(m(x), y).backward(); opt.step()
out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ckpt_ref"
os.makedirs(out, exist_ok=True)
times = []
for k in range(5):
    t = time.perf_counter()
    tmp = os.path.join(out, "tmp.pth")
    with open(tmp, "wb") as f:
        torch.save({"model": m.state_dict(), "optimizer": opt.state_dict()}, f)
        f.flush(); os.fsync(f.fileno())
    os.replace(tmp, os.path.join(out, "last.pth"))
    times.append(time.perf_counter() - t)
print("bytes", os.path.getsize(os.path.join(out, "last.pth")))
print("RESULT torch-checkpoint-seconds %.3f" % statistics.median(times), ["%.2f" % t for t in times])
