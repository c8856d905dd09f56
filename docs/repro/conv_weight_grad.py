#!/usr/bin/env python3
"""Minimal reproduction: Burn 0.22's convolution weight gradient on libtorch.

burn-backend's default `conv2d_weight_backward` (which burn-tch and burn-flex do not
override) computes dL/dW as a convolution of the input with its batch and channel axes
swapped, using the output gradient as a dilated kernel:

    dW = conv2d(x^T, g^T, dilation=stride, stride=dilation)^T

PyTorch's autograd calls `convolution_backward`, which oneDNN implements with dedicated
weight-gradient kernels. Both run on the same libtorch here, so the difference is the
lowering alone. tch-rs 0.22 (what burn-tch uses) exposes no `convolution_backward`, and
an im2col + matmul lowering (also timed) is slower still.

Usage: python conv_weight_grad.py [--threads 2]   (torch 2.9.0 CPU)
"""
import argparse, time
import torch
import torch.nn.functional as F

# (in, out, kernel, stride, padding, input side) of the post's five convolutions.
LAYERS = [(3, 96, 11, 4, 0, 227), (96, 256, 5, 1, 2, 27), (256, 384, 3, 1, 1, 13),
          (384, 384, 3, 1, 1, 13), (384, 256, 3, 1, 1, 13)]


def median_ms(f, reps=5):
    f()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return sorted(times)[reps // 2] * 1e3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    n = a.batch_size
    totals = [0.0, 0.0, 0.0]
    print("layer              forward  dW native  dW burn-lowering  dW im2col   dX native  dX burn-lowering")
    for cin, cout, k, s, pad, h in LAYERS:
        x, w = torch.randn(n, cin, h, h), torch.randn(cout, cin, k, k)
        y = F.conv2d(x, w, stride=s, padding=pad)
        g = torch.randn_like(y)

        def native(mask):
            return torch.ops.aten.convolution_backward(
                g, x, w, [cout], [s, s], [pad, pad], [1, 1], False, [0, 0], 1, mask)

        def burn_weight():
            return F.conv2d(x.transpose(0, 1), g.transpose(0, 1), padding=pad, dilation=s,
                            stride=1).transpose(0, 1)[:, :, :k, :k]

        def im2col_weight():
            cols = F.unfold(x, k, padding=pad, stride=s)
            return torch.bmm(g.reshape(n, cout, -1), cols.transpose(1, 2)).sum(0)

        out_pad = (h + 2 * pad - k) - (y.shape[2] - 1) * s

        def burn_input():
            return F.conv_transpose2d(g, w, stride=s, padding=pad, output_padding=out_pad)

        expected = native([False, True, False])[1]
        error = (burn_weight() - expected).abs().max() / expected.abs().max()
        assert error < 1e-4, f"the lowering disagrees with autograd ({error:.1e})"
        row = [median_ms(lambda: F.conv2d(x, w, stride=s, padding=pad)),
               median_ms(lambda: native([False, True, False])), median_ms(burn_weight),
               median_ms(im2col_weight), median_ms(lambda: native([True, False, False])),
               median_ms(burn_input)]
        totals[0] += row[1]
        totals[1] += row[2]
        totals[2] += row[3]
        print(f"conv {cin:>3}->{cout:<3} k{k:<2} s{s}  " + "  ".join(f"{v:9.0f}" for v in row))
    print(f"weight gradients, all five layers: native {totals[0]:.0f} ms, Burn's lowering "
          f"{totals[1]:.0f} ms ({totals[1] / totals[0]:.2f}x), im2col {totals[2]:.0f} ms")


if __name__ == "__main__":
    main()
