"""Surrogate gradients: training a converted network *as a spiking network* (backpropagation through time).

The forward pass is the exact integrate-and-fire simulation of :func:`~spikedet.spiking.functional.if_steps`
(same arithmetic, bit-identical output); only the backward pass replaces the Heaviside step's zero derivative
by a surrogate ``∂s/∂m ≈ σ(m − θ)``. The whole T-step recurrence is one autograd node that keeps just the
pre-spike membranes ``m_t`` and runs the reverse-time recursion itself, so training costs one ``[T, *shape]``
tensor per neuron layer instead of a graph of ~5 ops per step.

Recurrence (per element, soft reset): ``m_t = v_{t−1} + x_t``, ``s_t = H(m_t − θ)``, ``o_t = θ s_t``,
``v_t = m_t − θ s_t``, ``v_0`` given. With ``δ_t = ∂L/∂v_t`` (``δ_T = 0``) and ``g_t = ∂L/∂o_t``:

    ∂L/∂s_t = θ g_t − θ δ_t          (the second term only when the reset is not detached)
    ∂L/∂m_t = δ_t + σ_t ∂L/∂s_t  = ∂L/∂x_t = δ_{t−1}
    ∂L/∂θ  += s_t g_t − s_t δ_t − σ_t ∂L/∂s_t
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["SURROGATES", "if_steps_surrogate"]


def _triangle(u: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """``max(0, 1 − |u|/θ)/θ``: a spike's value θ then has slope 1 near threshold, like the ANN's STE."""
    return (1 - u.abs() / threshold).clamp_(min=0) / threshold


def _sigmoid(u: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Derivative of ``sigmoid(4u/θ)``: the same peak slope as the triangle, with tails."""
    sig = torch.sigmoid(4 * u / threshold)
    return 4 * sig * (1 - sig) / threshold


SURROGATES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"triangle": _triangle, "sigmoid": _sigmoid}


def _reduce_to(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a broadcast gradient back to ``shape`` (a scalar or per-channel threshold)."""
    while grad.dim() > len(shape):
        grad = grad.sum(0)
    for i, size in enumerate(shape):
        if size == 1 and grad.shape[i] != 1:
            grad = grad.sum(i, keepdim=True)
    return grad


class _IFSurrogate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v_init, threshold, steps, constant, fire_ge, surrogate, detach_reset):
        v = v_init.detach().clone()
        out = torch.empty((steps, *v.shape), dtype=v.dtype, device=v.device)
        membranes = torch.empty_like(out)
        compare = torch.ge if fire_ge else torch.gt
        for t in range(steps):
            v.add_(x if constant else x[t])
            membranes[t].copy_(v)
            spike = out[t]
            compare(v, threshold, out=spike)
            v.sub_(spike.mul_(threshold))
        ctx.save_for_backward(membranes, threshold)
        ctx.config = (constant, fire_ge, surrogate, detach_reset)
        ctx.mark_non_differentiable(v)
        return out, v

    @staticmethod
    def backward(ctx, grad_out, _grad_v):
        membranes, threshold = ctx.saved_tensors
        constant, fire_ge, surrogate, detach_reset = ctx.config
        derivative = SURROGATES[surrogate]
        compare = torch.ge if fire_ge else torch.gt
        delta = torch.zeros_like(membranes[0])
        grad_x = torch.zeros_like(delta) if constant else torch.empty_like(membranes)
        grad_theta = torch.zeros_like(delta)
        for t in range(membranes.shape[0] - 1, -1, -1):
            m, g = membranes[t], grad_out[t]
            spike = compare(m, threshold).to(m.dtype)
            sigma = derivative(m - threshold, threshold)
            d_spike = threshold * g if detach_reset else threshold * (g - delta)
            d_m = delta + sigma * d_spike
            grad_theta += spike * (g - delta) - sigma * d_spike
            if constant:
                grad_x += d_m
            else:
                grad_x[t] = d_m
            delta = d_m
        needs = ctx.needs_input_grad
        return (
            grad_x if needs[0] else None,
            delta if needs[1] else None,
            _reduce_to(grad_theta, threshold.shape) if needs[2] else None,
            None, None, None, None, None,
        )


def if_steps_surrogate(
    x: torch.Tensor,
    v_init: torch.Tensor,
    threshold: torch.Tensor,
    steps: int,
    *,
    constant: bool = False,
    fire_ge: bool = True,
    surrogate: str = "triangle",
    detach_reset: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """IF with soft reset and a surrogate gradient; returns ``(output [T, *shape], final membrane)``.

    ``x`` is ``[T, *shape]`` (or a constant current ``shape`` with ``constant=True``), ``v_init`` the starting
    membrane (``v0·θ``, differentiable), ``threshold`` θ (differentiable, scalar or broadcastable). The output
    equals :func:`~spikedet.spiking.functional.if_steps` bit for bit; the final membrane carries no gradient.
    ``detach_reset`` keeps the reset out of the backward pass (the usual choice for deep SNNs: the reset's
    surrogate term fights the output's).
    """
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate '{surrogate}'; choose from {', '.join(SURROGATES)}")
    shape = x.shape if constant else x.shape[1:]
    v_init = v_init.expand(shape)
    return _IFSurrogate.apply(x, v_init, threshold, steps, constant, fire_ge, surrogate, detach_reset)
