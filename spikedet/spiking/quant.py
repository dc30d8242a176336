"""Clip-quantized activations used to train convertible ANNs (methods.md §1.2, §8.1).

One module, :class:`QCFS`, covers the training activations of every recipe:

* QCFS / COS / PASCAL: learnable clip λ, ``shift = 0.5`` (floor(x + ½)).
* Dual-Phase: the same forward in eval; in training a fraction ``noise_p`` of elements skips quantization.
* Fast-SNN: round(·) ≡ floor(· + ½), so again ``shift = 0.5``; λ is Fast-SNN's α.
* CASC: fixed clip 1 (``learn_clip=False``), ``shift = 0`` (plain floor), gradient clamped to [-1, 1].
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["QCFS", "TRAINING_ACTIVATIONS", "quantized_activations"]

# QCFS settings of the training activations by name (methods.md §8.1), shared by every detector family's trainer.
TRAINING_ACTIVATIONS: dict[str, dict[str, object]] = {
    "qcfs": {},
    "casc": {"clip": 1.0, "learn_clip": False, "shift": 0.0, "clamp_grad": True},  # ClipQuan: fixed clip, floor
}


class _FloorSTE(torch.autograd.Function):
    """floor with a straight-through (identity) gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


class _ClampGrad(torch.autograd.Function):
    """Identity forward; clamps the incoming gradient to [-1, 1] (CASC's hardtanh straight-through)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.clamp(-1.0, 1.0)


class QCFS(nn.Module):
    """Quantization-clip-floor-shift activation ``λ · clip(floor(z·L/λ + φ) / L, 0, 1)``.

    Computed as clamp-then-floor (``λ · floor(clamp(z/λ, 0, 1)·L + φ) / L``), which is forward-identical for
    ``φ < 1`` and gives, through autograd with a straight-through floor, ``∂h/∂z = 1`` inside the clip range and
    ``∂h/∂λ = (h − z)/λ`` inside, ``1`` above (the correct λ gradient; methods.md §1.2).

    Args:
        levels: quantization levels L (the SNN needs T = L steps for exact equivalence on constant input).
        clip: initial clip λ (8.0 as in the QCFS reference; the threshold θ of the converted neuron).
        learn_clip: learn λ (QCFS) or keep it fixed (CASC).
        shift: φ; 0.5 for QCFS/round, 0.0 for CASC's floor.
        noise_p: Dual-Phase's noisy quantization: in training each element skips rounding with probability p.
        clamp_grad: clamp the straight-through gradient to [-1, 1] (CASC).
    """

    def __init__(
        self,
        levels: int = 4,
        clip: float = 8.0,
        learn_clip: bool = True,
        shift: float = 0.5,
        noise_p: float = 0.0,
        clamp_grad: bool = False,
    ) -> None:
        super().__init__()
        if int(levels) < 1:
            raise ValueError(f"QCFS levels must be >= 1, got {levels}")
        if not 0.0 <= shift < 1.0:
            raise ValueError(f"QCFS shift must be in [0, 1), got {shift}")
        if not 0.0 <= noise_p < 1.0:
            raise ValueError(f"QCFS noise_p must be in [0, 1), got {noise_p}")
        self.levels = int(levels)
        self.shift = float(shift)
        self.noise_p = float(noise_p)
        self.clamp_grad = bool(clamp_grad)
        self.clip = nn.Parameter(torch.tensor(float(clip)), requires_grad=learn_clip)

    @property
    def threshold(self) -> torch.Tensor:
        """The firing threshold θ of the equivalent IF neuron: |λ| (λ can drift negative in training)."""
        return self.clip.detach().abs()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lam = self.clip.abs()
        x = torch.clamp(z / lam, 0.0, 1.0)
        if self.clamp_grad:
            x = _ClampGrad.apply(x)
        q = _FloorSTE.apply(x * self.levels + self.shift) / self.levels  # φ < 1 keeps q ≤ 1
        if self.training and self.noise_p > 0:
            keep_analog = torch.rand_like(x) < self.noise_p
            q = torch.where(keep_analog, x, q)
        return q * lam

    def extra_repr(self) -> str:
        extras = f"levels={self.levels}, clip={self.clip.item():.4g}, shift={self.shift}"
        if not self.clip.requires_grad:
            extras += ", fixed_clip"
        if self.noise_p:
            extras += f", noise_p={self.noise_p}"
        return extras


def quantized_activations(model: nn.Module) -> list[tuple[str, QCFS]]:
    """All QCFS modules of ``model`` with their qualified names, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, QCFS)]
