"""Plain conv + BN + QCFS backbones for SSD: every nonlinearity is a QCFS, so all of it converts to IF neurons.

``vgg_slim``: a slim VGG-style stack (3×3 convs, max-pool downsampling) giving feature maps at strides 8, 16
and 32, and SSD "extra" layers (1×1 reduce, 3×3 stride-2 conv) for strides 64 and 128 (at 320 px: 40, 20, 10, 5
and 3 cells). No Hardswish, squeeze-excite gate or L2Norm: a gate multiplies two activations and L2Norm
divides by a norm, neither of which a rate-coded IF neuron with linear synapses can compute. Max-pooling
converts exactly (``SpikingMaxPool``).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..spiking.quant import QCFS

__all__ = ["BACKBONES", "VGGSlim", "conv_bn_act", "build_backbone"]


def conv_bn_act(cin: int, cout: int, kernel: int, stride: int, act: Callable[[], nn.Module]) -> nn.Sequential:
    """``Conv2d → BatchNorm2d → act`` as one ``nn.Sequential`` (the pattern ``fold_batchnorm`` folds)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), act()
    )


class VGGSlim(nn.Module):
    """Slim VGG-style SSD backbone; ``forward`` returns the feature maps, fine to coarse.

    Channels scale with ``width`` (1.0: about 0.9 M parameters, 0.3 GMACs at 320 px).
    """

    def __init__(self, width: float = 1.0, act: Callable[[], nn.Module] = QCFS) -> None:
        super().__init__()

        def ch(c: int) -> int:
            return max(8, int(round(c * width / 8)) * 8)

        c1, c2, c3, c4, c5, cx = ch(16), ch(32), ch(64), ch(128), ch(256), ch(64)
        pool = lambda: nn.MaxPool2d(2, 2, ceil_mode=True)  # noqa: E731  (ceil: odd sizes keep their border)
        self.stages = nn.ModuleList([
            # stride 8: a stride-2 stem keeps the full-resolution convs (the costly ones on CPU) to one
            nn.Sequential(
                conv_bn_act(3, c1, 3, 2, act), pool(), conv_bn_act(c1, c2, 3, 1, act), pool(),
                conv_bn_act(c2, c3, 3, 1, act), conv_bn_act(c3, c3, 3, 1, act),
            ),
            nn.Sequential(pool(), conv_bn_act(c3, c4, 3, 1, act), conv_bn_act(c4, c4, 3, 1, act)),  # stride 16
            nn.Sequential(pool(), conv_bn_act(c4, c5, 3, 1, act)),  # stride 32
            nn.Sequential(conv_bn_act(c5, cx, 1, 1, act), conv_bn_act(cx, c4, 3, 2, act)),  # stride 64
            nn.Sequential(conv_bn_act(c4, cx, 1, 1, act), conv_bn_act(cx, c4, 3, 2, act)),  # stride 128
        ])
        self.out_channels = [c3, c4, c5, c4, c4]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


BACKBONES: dict[str, Callable[..., nn.Module]] = {"vgg_slim": VGGSlim}


def build_backbone(name: str, width: float = 1.0, act: Callable[[], nn.Module] = QCFS) -> nn.Module:
    """A backbone by name; an unknown name lists the available ones."""
    if name not in BACKBONES:
        raise ValueError(f"unknown SSD backbone '{name}'; available: {', '.join(sorted(BACKBONES))}")
    if not width > 0:
        raise ValueError(f"SSD width must be > 0, got {width}")
    return BACKBONES[name](width=width, act=act)
