"""Small quantized networks shared by the spiking tests."""
from __future__ import annotations

import copy

import torch
from torch import nn

from spikedet.spiking import QCFS


def quant(levels: int, casc: bool) -> QCFS:
    """QCFS as trained for QCFS (φ = ½, learnable λ) or for CASC (φ = 0, λ fixed)."""
    if casc:
        return QCFS(levels=levels, clip=1.0, learn_clip=False, shift=0.0)
    return QCFS(levels=levels, clip=1.0)


class ConvBNAct(nn.Module):
    """An ultralytics-style block with ``conv``/``bn``/``act`` attributes."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, levels: int, casc: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = quant(levels, casc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SmallDetector(nn.Module):
    """Analog stem, stride-2 conv, residual block (a Sequential conv-bn-act), stride-2 and stride-1 max-pools,
    nearest upsample, concat and a read-out conv with bias: the operators of a YOLO neck in miniature."""

    def __init__(self, levels: int = 4, casc: bool = False, pools: bool = True, width: int = 8) -> None:
        super().__init__()
        w = width
        self.pools = pools
        self.stem = ConvBNAct(3, w, 3, 1, levels, casc)
        self.down = ConvBNAct(w, w, 3, 2, levels, casc)
        self.block = nn.Sequential(nn.Conv2d(w, w, 3, 1, 1), nn.BatchNorm2d(w), quant(levels, casc))
        self.pool2 = nn.MaxPool2d(2, 2)
        self.reduce = ConvBNAct(w, w, 3, 2, levels, casc)  # stands in for pool2 without max-pools
        self.mid = ConvBNAct(w, w, 1, 1, levels, casc)
        self.pool1 = nn.MaxPool2d(3, 1, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.fuse = ConvBNAct(2 * w, w, 1, 1, levels, casc)
        self.head = nn.Conv2d(w, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.down(self.stem(x))
        r = a + self.block(a)  # residual add of two spike trains
        p = self.pool2(r) if self.pools else self.reduce(r)
        m = self.mid(p)
        if self.pools:
            m = self.pool1(self.pool1(m))  # one pool applied twice, as ultralytics' SPPF does
        c = torch.cat([self.up(m), r], 1)
        return self.head(self.fuse(c))


READOUTS = ["head"]


def small_detector(levels: int = 4, casc: bool = False, pools: bool = True, seed: int = 0,
                   dtype: torch.dtype = torch.float64) -> SmallDetector:
    """A SmallDetector in eval mode with non-trivial BatchNorm statistics (activations in a moderate range)."""
    torch.manual_seed(seed)
    return firing_batchnorm(SmallDetector(levels, casc, pools)).to(dtype).eval()


def firing_batchnorm(
    net: nn.Module, *, mean: float = 0.3, var: tuple[float, float] = (0.3, 1.0), weight: tuple[float, float] = (0.6, 1.2),
) -> nn.Module:
    """``net`` with random BatchNorm statistics and affine terms (means in ±``mean``, biases in [0, 0.3]) that keep
    a random network's activations in the range where its neurons fire; drawn from torch's global generator."""
    for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.uniform_(-mean, mean)
        bn.running_var.uniform_(*var)
        bn.weight.data.uniform_(*weight)
        bn.bias.data.uniform_(0.0, 0.3)
    return net


def with_levels(net: nn.Module, levels: int) -> nn.Module:
    """A copy of ``net`` whose quantized activations use ``levels`` levels (the QANN an SNN at T = levels matches)."""
    out = copy.deepcopy(net)
    for q in out.modules():
        if isinstance(q, QCFS):
            q.levels = levels
    return out
