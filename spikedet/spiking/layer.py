"""Spiking counterparts of the non-neuron layers that need state: max-pooling and the read-out.

Linear layers (conv, add, concat, nearest upsample, avg-pool) act on each step unchanged, time folded into
the batch. Max-pooling is not linear and a read-out must average over time; both are handled here.
"""
from __future__ import annotations

import torch
from torch import nn

from .context import SimContext, StatefulModule

__all__ = ["SpikingMaxPool", "ReadOut"]


def _as_sequence(x: torch.Tensor, ctx: SimContext) -> torch.Tensor:
    """``[steps·B, ...]`` (or a constant ``[B, ...]``) as ``[steps, B, ...]``."""
    if ctx.is_constant(x.shape[0]):
        return x.unsqueeze(0).expand(ctx.steps, *x.shape)
    return x.view(ctx.steps, x.shape[0] // ctx.steps, *x.shape[1:])


class SpikingMaxPool(StatefulModule):
    """Max-pooling on accumulated input, exact with respect to the ANN's max-pool of the mean input.

    With ``S_t`` the input accumulated up to step t, the output of step t is
    ``y_t = maxpool(S_t) − maxpool(S_{t−1})``, so ``Σ_{t≤τ} y_t = maxpool(S_τ)`` for every τ: averaged over
    the steps it is exactly ``maxpool(mean input)``, the quantity the ANN computes. For non-negative spike
    inputs (``{0, θ}`` per step) ``y_t ∈ {0, θ}`` is again a spike train, and cascaded pools (SPPF) stay
    exact because each one sees the previous one's accumulated output. This is the "running max over
    accumulated counts" form of CASC's lateral-inhibition pooling, computed for all steps in one pooling call.
    """

    state_attrs = ("accumulated", "pooled")
    accumulated: torch.Tensor | None
    pooled: torch.Tensor | None

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.enter_call_site()
        seq = _as_sequence(x, self.ctx)
        acc = seq.cumsum(0)
        if self.accumulated is not None:
            acc += self.accumulated
        pooled = self.pool(acc.flatten(0, 1))
        pooled = pooled.view(seq.shape[0], seq.shape[1], *pooled.shape[1:])
        first = pooled[:1] if self.pooled is None else pooled[:1] - self.pooled
        if pooled.requires_grad:  # spike-aware training: autograd takes no out= arguments
            out = torch.cat([first, pooled[1:] - pooled[:-1]])
        else:
            out = torch.empty_like(pooled)
            out[:1] = first
            torch.sub(pooled[1:], pooled[:-1], out=out[1:])
        self.accumulated, self.pooled = acc[-1], pooled[-1]
        return out.flatten(0, 1)


class ReadOut(StatefulModule):
    """A detector-head output layer whose spiking input is averaged over the effective steps.

    The wrapped layer is linear, so ``mean_t(W x_t + b) = W mean_t(x_t) + b``: at every step the layer is applied
    to the running mean of its input, and the output keeps the time-folded layout ``[steps·B, ...]``, so code
    after the read-out that takes the batch size from a spiking tensor (ultralytics' Detect) sees consistent
    shapes; the runtime then picks the steps it was asked for. Sleep steps (``ctx.wake`` false) are integrated
    but do not count in the average, and carry no bias (CASC's read-out ``Σ_all / T_wake``). State (running
    sum, effective steps) persists until :meth:`reset`, for streaming.
    """

    state_attrs = ("total", "effective_steps")
    total: torch.Tensor | None
    effective_steps: int | None

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.enter_call_site()
        ctx = self.ctx
        acc = _as_sequence(x, ctx).cumsum(0)
        if self.total is not None:
            acc += self.total
        wake = ctx.wake if ctx.wake is not None else [True] * ctx.steps
        effective, running = [], self.effective_steps or 0
        for awake in wake:
            running += int(awake)
            effective.append(running)
        if effective[0] == 0:
            raise ValueError("the simulation starts with a sleep step: no wake step to read out")
        self.total, self.effective_steps = acc[-1].clone(), effective[-1]
        scale = torch.tensor([1.0 / n for n in effective], dtype=acc.dtype, device=acc.device)
        return self.layer(acc.mul_(scale.view(-1, *([1] * (acc.dim() - 1)))).flatten(0, 1))
