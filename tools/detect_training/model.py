"""Compact U-Net for steel-defect segmentation, sized for CPU training and inference.

A stride-2 stem halves the resolution first: full-resolution layers dominate CPU time while
NEU defects are rarely thinner than two pixels. Four encoder levels (stem, 1/2, 1/4, 1/8
with ceil pooling, so 200 px inputs need no padding) give the bottleneck a receptive field
wide enough for large "patches" regions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 4
DEFAULT_WIDTHS: tuple[int, ...] = (16, 32, 64, 128)
# Keeps flat (near-constant) uploads from blowing up under per-image standardisation;
# NEU images have a gray-level std of about 0.05 on the 0..1 scale.
STD_FLOOR = 0.02


def _conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    ]


class DoubleConv(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__(*_conv_bn_relu(in_ch, out_ch, stride), *_conv_bn_relu(out_ch, out_ch))


class DefectUNet(nn.Module):
    """Input ``(N, 1, H, W)`` gray in 0..1; output class logits ``(N, C, H, W)``."""

    def __init__(self, num_classes: int = NUM_CLASSES, widths: Sequence[int] = DEFAULT_WIDTHS) -> None:
        super().__init__()
        widths = tuple(widths)
        self.widths = widths
        self.encoders = nn.ModuleList(
            [DoubleConv(1, widths[0], stride=2)] + [DoubleConv(widths[i - 1], widths[i]) for i in range(1, len(widths))]
        )
        decoders = []
        previous = widths[-1]
        for skip in reversed(widths[:-1]):
            decoders.append(DoubleConv(previous + skip, skip))
            previous = skip
        self.decoders = nn.ModuleList(decoders)
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = _standardize(x)
        skips = []
        for level, encoder in enumerate(self.encoders):
            if level:
                x = F.max_pool2d(x, 2, ceil_mode=True)
            x = encoder(x)
            skips.append(x)
        skips.pop()  # the bottleneck output is x itself
        for decoder in self.decoders:
            skip = skips.pop()
            x = decoder(torch.cat([_resize(x, skip.shape[-2:]), skip], dim=1))
        return _resize(self.head(x), size)


class SoftmaxWrapper(nn.Module):
    """Export wrapper: the service wants probabilities (argmax and confidence from one map)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


def _standardize(x: torch.Tensor) -> torch.Tensor:
    # Per-image standardisation makes the model indifferent to exposure and gain, which vary
    # between NEU images and even more between uploads.
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
    return (x - mean) / (std + STD_FLOOR)


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
