"""3x3 convolution benchmark on CPU: the library's direct convolution vs Winograd F(4x4, 3x3)."""

# For the same-padded 3x3 layers of the synthesis network and discriminator (batch 4): best wall
# time of the forward pass and of forward + backward (input and weight gradients), and the speed-up.
# The `auto` rule in epigraf_field/winograd.py follows this table.
#
#     python benchmarks/conv.py                    # about a minute on 2 cores
#     python benchmarks/conv.py --channels 512 --sizes 64 32

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F

from epigraf_field.winograd import winograd_conv2d_3x3
from timing import timed

CPU = torch.device("cpu")


def forward_backward(conv: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, w: torch.Tensor) -> None:
    y = conv(x, w)
    torch.autograd.grad(y, (x, w), torch.ones_like(y))


def direct(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, w, padding=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--channels", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 32, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU, threads {torch.get_num_threads()}, batch {args.batch}")
    print(f"{'channels':>8} {'size':>5} {'fwd direct ms':>14} {'fwd winograd ms':>16} {'x':>5} "
          f"{'f+b direct ms':>14} {'f+b winograd ms':>16} {'x':>5}")
    for channels in args.channels:
        for size in args.sizes:
            g = torch.Generator().manual_seed(0)
            x = torch.randn(args.batch, channels, size, size, generator=g).requires_grad_()
            w = (torch.randn(channels, channels, 3, 3, generator=g) / (3 * channels**0.5)).requires_grad_()
            with torch.no_grad():
                fwd = [timed(CPU, lambda conv=conv: conv(x, w), args.repeats)[1] for conv in (direct, winograd_conv2d_3x3)]
            both = [timed(CPU, lambda conv=conv: forward_backward(conv, x, w), args.repeats)[1]
                    for conv in (direct, winograd_conv2d_3x3)]
            print(f"{channels:>8} {size:>5} {fwd[0] * 1e3:>14.1f} {fwd[1] * 1e3:>16.1f} {fwd[0] / fwd[1]:>5.2f} "
                  f"{both[0] * 1e3:>14.1f} {both[1] * 1e3:>16.1f} {both[0] / both[1]:>5.2f}", flush=True)


if __name__ == "__main__":
    main()
