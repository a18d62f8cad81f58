"""Compact U-Net for steel-defect segmentation, sized for CPU training and inference.

A stride-2 stem halves the resolution first: full-resolution layers dominate CPU time while
NEU defects are rarely thinner than two pixels. Four encoder levels (stem, 1/2, 1/4, 1/8
with ceil pooling, so 200 px inputs need no padding) give the bottleneck a receptive field
wide enough for large "patches" regions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm that always applies its stored statistics, also while training.

    Fine-tuning keeps normalisation fixed (see :func:`fold_batchnorm`): batch statistics of 16
    crops would otherwise pull the layers away from what the trained network expects.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm's scale into the convolution before it, in place.

    Each BatchNorm becomes a :class:`FrozenBatchNorm2d` that only adds a bias, so the network
    computes the same function and has exactly the parameters of its ONNX export (where the
    exporter folds BatchNorm the same way); :func:`load_exported_weights` relies on that.
    """
    for sequence in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for index in range(len(sequence) - 1):
            conv, norm = sequence[index], sequence[index + 1]
            if not isinstance(conv, nn.Conv2d) or type(norm) is not nn.BatchNorm2d:
                continue  # FrozenBatchNorm2d: folded already
            assert norm.running_mean is not None and norm.running_var is not None
            frozen = FrozenBatchNorm2d(norm.num_features, eps=norm.eps)
            with torch.no_grad():
                scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                conv.weight.mul_(scale[:, None, None, None])
                frozen.bias.copy_(norm.bias - norm.running_mean * scale)
                frozen.running_var.fill_(1.0 - norm.eps)  # (x - 0) / sqrt(1 - eps + eps) = x
            sequence[index + 1] = frozen
    return model


def load_exported_weights(model: DefectUNet, path: Path) -> DefectUNet:
    """Load the weights of an exported :class:`DefectUNet` ONNX file into ``model`` (same widths).

    The export folded BatchNorm into the convolutions, so ``model`` is folded first and takes
    the convolution weights in graph order, each bias going to the BatchNorm after it.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    exported = [node for node in graph.node if node.op_type == "Conv"]
    modules = list(fold_batchnorm(model).modules())
    convs = [(i, m) for i, m in enumerate(modules) if isinstance(m, nn.Conv2d)]
    if len(exported) != len(convs):
        raise ValueError(f"{path}: {len(exported)} convolutions, the model has {len(convs)}")
    with torch.no_grad():
        for node, (position, conv) in zip(exported, convs, strict=True):
            weight = torch.from_numpy(tensors[node.input[1]].copy())
            if weight.shape != conv.weight.shape:
                raise ValueError(f"{path}: convolution {tuple(weight.shape)}, the model has {tuple(conv.weight.shape)}")
            conv.weight.copy_(weight)
            bias = torch.from_numpy(tensors[node.input[2]].copy())
            follower = modules[position + 1] if position + 1 < len(modules) else None
            (follower if isinstance(follower, FrozenBatchNorm2d) else conv).bias.copy_(bias)  # type: ignore[union-attr]
    return model


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
