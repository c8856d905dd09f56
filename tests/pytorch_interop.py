"""PyTorch's side of tests/pytorch.rs: writes seeded weights and reference outputs, and
loads weights exported by this project into PyTorch's own networks.

  python tests/pytorch_interop.py write VARIANT CLASSES SIDE SEED OUT_DIR [he]
      VARIANT is torchvision (torchvision.models.alexnet) or original (the post's
      AlexNet/model.py). Writes OUT_DIR/weights.pth (a state_dict), checkpoint.pth (the
      original's train.py dict: epoch, model_state_dict, optimizer_state_dict),
      weights.safetensors, input.f32 (2 x 3 x SIDE x SIDE images) and expected.f32 (the
      eval-mode log-softmax outputs), raw little-endian float32. With `he`, conv and
      linear weights are He-normal (ReLU gain) with zero biases instead of PyTorch's
      default, which shrinks the signal layer by layer: weights a deep plain network
      trains from quickly, standing in for ImageNet's in the fine-tuning test.

  python tests/pytorch_interop.py check VARIANT CLASSES SIDE WEIGHTS INPUT OUTPUT
      Loads the safetensors WEIGHTS strictly (load_state_dict(strict=True)) and prints
      the largest difference between PyTorch's eval outputs on INPUT and OUTPUT (ours),
      relative to OUTPUT's largest magnitude.

  python tests/pytorch_interop.py loss EPSILON ROWS CLASSES LOGITS TARGETS GRAD_OUT
      F.cross_entropy(LOGITS, TARGETS, label_smoothing=EPSILON) on ROWS x CLASSES
      float32 logits (TARGETS: comma-separated class ids): prints the loss and writes
      its gradient with respect to the logits to GRAD_OUT.

  python tests/pytorch_interop.py clip MAX_NORM LENGTHS GRADS OUT
      torch.nn.utils.clip_grad_norm_ on gradients given as one float32 file GRADS cut
      into tensors of LENGTHS (comma-separated), computed in float64: prints the norm it
      returns and writes the clipped gradients, in the same order, to OUT.

  python tests/pytorch_interop.py adamw LR BETA1 BETA2 EPS WD STEPS LENGTHS PARAMS GRADS OUT
      torch.optim.AdamW on parameters given as one float32 file PARAMS cut into tensors
      of LENGTHS, taking STEPS steps whose gradients are GRADS (STEPS such files one
      after the other in one file); writes the parameters after them to OUT.

Needs torch, torchvision and safetensors (CI installs them with torch 2.9.0).
"""
import struct
import sys

import torch
from torch import nn


def original(classes: int) -> nn.Module:
    """AlexNet/model.py of adeveloperdiary/DeepLearning_MiniProjects (June 2020): one
    Sequential named `model`; its model_util.Flatten is a module without weights, as
    nn.Flatten."""

    class AlexNetModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = nn.Sequential(
                nn.Conv2d(3, 96, kernel_size=11, stride=4), nn.ReLU(inplace=True),
                nn.BatchNorm2d(96), nn.MaxPool2d(3, 2), nn.Dropout(0.25),
                nn.Conv2d(96, 256, kernel_size=5, stride=1, padding=2), nn.ReLU(inplace=True),
                nn.BatchNorm2d(256), nn.MaxPool2d(3, 2), nn.Dropout(0.25),
                nn.Conv2d(256, 384, kernel_size=3, stride=1, padding=1), nn.ReLU(inplace=True),
                nn.BatchNorm2d(384),
                nn.Conv2d(384, 384, kernel_size=3, stride=1, padding=1), nn.ReLU(inplace=True),
                nn.BatchNorm2d(384),
                nn.Conv2d(384, 256, kernel_size=3, stride=1, padding=1), nn.ReLU(inplace=True),
                nn.BatchNorm2d(256), nn.MaxPool2d(3, 2), nn.Dropout(0.25),
                nn.Flatten(),
                nn.Linear(6 * 6 * 256, 4096), nn.ReLU(inplace=True), nn.BatchNorm1d(4096),
                nn.Dropout(0.5),
                nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.BatchNorm1d(4096),
                nn.Linear(4096, classes), nn.LogSoftmax(dim=1),
            )

        def forward(self, x):
            return self.model(x)

    return AlexNetModel()


def network(variant: str, classes: int) -> nn.Module:
    if variant == "torchvision":
        import torchvision

        return torchvision.models.alexnet(num_classes=classes)
    if variant == "original":
        return original(classes)
    raise SystemExit(f"unknown variant {variant}")


def log_probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.log_softmax(model(x), dim=1)


def write_f32(path: str, tensor: torch.Tensor) -> None:
    values = tensor.detach().contiguous().view(-1).tolist()
    with open(path, "wb") as f:
        f.write(struct.pack(f"<{len(values)}f", *values))


def read_f32(path: str, shape) -> torch.Tensor:
    with open(path, "rb") as f:
        data = f.read()
    return torch.tensor(struct.unpack(f"<{len(data) // 4}f", data)).view(*shape)


def write(variant: str, classes: int, side: int, seed: int, out: str, he: bool) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = network(variant, classes)
    if he:
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
    # BatchNorm with non-trivial statistics, so that evaluation mode is what is compared.
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = module.num_features
            module.weight.data = torch.rand(n) + 0.5
            module.bias.data = torch.randn(n) * 0.1
            module.running_mean = torch.randn(n) * 0.1
            module.running_var = torch.rand(n) + 0.5
            module.num_batches_tracked = torch.tensor(7)
    state = model.state_dict()
    torch.save(state, f"{out}/weights.pth")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    torch.save(
        {"epoch": 9, "model_state_dict": state, "optimizer_state_dict": optimizer.state_dict()},
        f"{out}/checkpoint.pth",
    )
    save_file({k: v.contiguous() for k, v in state.items()}, f"{out}/weights.safetensors")
    x = torch.randn(2, 3, side, side) * 50.0
    write_f32(f"{out}/input.f32", x)
    write_f32(f"{out}/expected.f32", log_probs(model, x))


def check(variant: str, classes: int, side: int, weights: str, inputs: str, ours: str) -> None:
    from safetensors.torch import load_file

    model = network(variant, classes)
    model.load_state_dict(load_file(weights), strict=True)
    x = read_f32(inputs, (2, 3, side, side))
    theirs = log_probs(model, x)
    output = read_f32(ours, theirs.shape)
    scale = output.abs().max().item()
    print(((output - theirs).abs().max().item()) / max(scale, 1e-30))


def loss(epsilon: float, rows: int, classes: int, logits: str, targets: str, grad_out: str) -> None:
    x = read_f32(logits, (rows, classes)).double().requires_grad_()
    t = torch.tensor([int(c) for c in targets.split(",")])
    value = nn.functional.cross_entropy(x, t, label_smoothing=epsilon)
    value.backward()
    write_f32(grad_out, x.grad.float())
    print(repr(value.item()))


def clip(max_norm: float, lengths: str, grads: str, out: str) -> None:
    sizes = [int(n) for n in lengths.split(",")]
    flat = read_f32(grads, (sum(sizes),))
    params = []
    for chunk in torch.split(flat, sizes):
        # In float64: PyTorch's float32 norm on the CPU is off by 1e-3 over tens of
        # millions of values (a test of the definition, not of its rounding).
        param = torch.zeros(chunk.shape, dtype=torch.float64, requires_grad=True)
        param.grad = chunk.double()
        params.append(param)
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    write_f32(out, torch.cat([p.grad for p in params]).float())
    print(repr(norm.item()))


def adamw(lr, beta1, beta2, eps, wd, steps, lengths, params, grads, out) -> None:
    sizes = [int(n) for n in lengths.split(",")]
    total = sum(sizes)
    tensors = [p.clone().requires_grad_() for p in torch.split(read_f32(params, (total,)), sizes)]
    optimizer = torch.optim.AdamW(tensors, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=wd)
    every = read_f32(grads, (steps, total))
    for step in range(steps):
        for tensor, grad in zip(tensors, torch.split(every[step], sizes)):
            tensor.grad = grad.clone()
        optimizer.step()
    write_f32(out, torch.cat([t.detach() for t in tensors]))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "write":
        write(args[0], int(args[1]), int(args[2]), int(args[3]), args[4], args[5:] == ["he"])
    elif command == "check":
        check(args[0], int(args[1]), int(args[2]), args[3], args[4], args[5])
    elif command == "adamw":
        lr, b1, b2, eps, wd = (float(a) for a in args[:5])
        adamw(lr, b1, b2, eps, wd, int(args[5]), args[6], args[7], args[8], args[9])
    elif command == "clip":
        clip(float(args[0]), args[1], args[2], args[3])
    elif command == "loss":
        loss(float(args[0]), int(args[1]), int(args[2]), args[3], args[4], args[5])
    else:
        raise SystemExit(f"unknown command {command}")
