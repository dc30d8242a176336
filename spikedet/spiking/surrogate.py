"""Surrogate gradients: training a converted network *as a spiking network* (backpropagation through time).

The forward pass is the exact integrate-and-fire simulation of :func:`~spikedet.spiking.functional.if_steps`
(same arithmetic, bit-identical output); only the backward pass replaces the Heaviside step's zero derivative
by a surrogate ``∂s/∂m ≈ σ(m − θ)``. The whole T-step recurrence is one autograd node that keeps just the
pre-spike membranes ``m_t`` and runs the reverse-time recursion itself, so training costs one ``[T, *shape]``
tensor per neuron layer instead of a graph of ~5 ops per step; both loops are fused kernels
(:mod:`~spikedet.spiking.surrogate_kernels`).

Recurrence (per element, soft reset): ``m_t = v_{t−1} + x_t``, ``s_t = H(m_t − θ)``, ``o_t = θ s_t``,
``v_t = m_t − θ s_t``, ``v_0`` given. With ``δ_t = ∂L/∂v_t`` (``δ_T = 0``) and ``g_t = ∂L/∂o_t``:

    ∂L/∂s_t = θ g_t − θ δ_t          (the second term only when the reset is not detached)
    ∂L/∂m_t = δ_t + σ_t ∂L/∂s_t  = ∂L/∂x_t = δ_{t−1}
    ∂L/∂θ  += s_t g_t − s_t δ_t − σ_t ∂L/∂s_t

Fast-SNN's signed IF adds a negative spike after the positive reset, ``n_t = c_t·H(−εθ − v'_t)`` with
``v'_t = m_t − θ s_t`` and the gate ``c_t = [net count > 0]`` held constant; ``o_t = θ(s_t − n_t)``. Its
resets are always detached, so with ``ν_t`` the surrogate at ``v'_t + εθ``:

    ∂L/∂m_t = δ_t + θ g_t (σ_t + c_t ν_t)
    ∂L/∂θ  += (s_t − n_t)(g_t − δ_t) − θ g_t σ_t − θ g_t c_t ν_t (s_t − ε)
"""
from __future__ import annotations

import torch

from .surrogate_kernels import SURROGATES, fused, if_backward, if_forward, signed_if_backward, signed_if_forward

__all__ = ["SURROGATES", "if_steps_surrogate", "signed_if_steps_surrogate"]


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
        out, membranes, v = fused(if_forward)(x, v_init.detach(), threshold.detach(), steps, constant, fire_ge)
        ctx.save_for_backward(membranes, threshold)
        ctx.config = (constant, fire_ge, surrogate, detach_reset)
        ctx.mark_non_differentiable(v)
        return out, v

    @staticmethod
    def backward(ctx, grad_out, _grad_v):
        membranes, threshold = ctx.saved_tensors
        grad_x, grad_v, grad_theta = fused(if_backward)(membranes, grad_out.contiguous(), threshold, *ctx.config)
        needs = ctx.needs_input_grad
        return (
            grad_x if needs[0] else None,
            grad_v if needs[1] else None,
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


class _SignedIFSurrogate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v_init, count_init, threshold, steps, constant, eps, surrogate):
        out, membranes, gates, v, count = fused(signed_if_forward)(
            x, v_init.detach(), count_init.detach(), threshold.detach(), steps, constant, eps
        )
        ctx.save_for_backward(membranes, gates, out, threshold)
        ctx.config = (constant, eps, surrogate)
        ctx.mark_non_differentiable(v, count)
        return out, v, count

    @staticmethod
    def backward(ctx, grad_out, _grad_v, _grad_count):
        membranes, gates, out, threshold = ctx.saved_tensors
        grad_x, grad_v, grad_theta = fused(signed_if_backward)(
            membranes, gates, out, grad_out.contiguous(), threshold, *ctx.config
        )
        needs = ctx.needs_input_grad
        return (
            grad_x if needs[0] else None,
            grad_v if needs[1] else None,
            None,
            _reduce_to(grad_theta, threshold.shape) if needs[3] else None,
            None, None, None, None,
        )


def signed_if_steps_surrogate(
    x: torch.Tensor,
    v_init: torch.Tensor,
    count_init: torch.Tensor,
    threshold: torch.Tensor,
    steps: int,
    *,
    constant: bool = False,
    eps: float = 1e-3,
    surrogate: str = "triangle",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fast-SNN's signed IF with a surrogate gradient; returns ``(output, final membrane, final net count)``.

    The output equals :func:`~spikedet.spiking.functional.signed_if_steps` bit for bit. Both resets are kept out
    of the backward pass, and so is the gate that lets a negative spike fire only after a positive one.
    """
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate '{surrogate}'; choose from {', '.join(SURROGATES)}")
    shape = x.shape if constant else x.shape[1:]
    return _SignedIFSurrogate.apply(
        x, v_init.expand(shape), count_init.expand(shape), threshold, steps, constant, eps, surrogate
    )
