"""Running a converted network: layer-wise (time folded into the batch), anytime read-outs, streaming.

``SpikingNetwork(snn)(x, T)`` simulates T steps and returns the network output built from the read-outs
averaged over T. ``anytime(x, [1, 2, 4, 8])`` simulates once to the largest T and returns the output for every
requested T. ``stream(x, steps)`` continues from the current state (no reset) for frame-to-frame streaming.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .context import SimContext
from .convert import spiking_modules
from .schedule import OnlineSchedule, Schedule

__all__ = ["SpikingNetwork", "check_timesteps", "split_batch"]


def check_timesteps(timesteps: int | list[int]) -> list[int]:
    """Validate one or several time-step counts (each an integer ≥ 1)."""
    values = [timesteps] if isinstance(timesteps, int) else list(timesteps)
    if not values:
        raise ValueError("no time steps given")
    for t in values:
        if not isinstance(t, int) or isinstance(t, bool) or t < 1:
            raise ValueError(f"time steps T must be integers >= 1, got {t!r}")
    return values


def split_batch(obj: Any, parts: int) -> list[Any]:
    """Split every tensor in a (nested) output along dim 0 into ``parts`` equal chunks."""
    if isinstance(obj, torch.Tensor):
        return list(obj.chunk(parts, 0)) if obj.dim() > 0 else [obj] * parts
    if isinstance(obj, (list, tuple)):
        columns = [split_batch(o, parts) for o in obj]
        return [type(obj)(col[i] for col in columns) for i in range(parts)]
    if isinstance(obj, dict):
        columns = {k: split_batch(v, parts) for k, v in obj.items()}
        return [{k: v[i] for k, v in columns.items()} for i in range(parts)]
    return [obj] * parts


class SpikingNetwork(nn.Module):
    """A converted network with its shared simulation context and schedule."""

    def __init__(self, snn: nn.Module, schedule: Schedule | None = None) -> None:
        super().__init__()
        self.net = snn.eval()
        self.schedule = schedule or OnlineSchedule()
        self.ctx = SimContext()
        self.stateful = spiking_modules(snn)
        for module in self.stateful:
            module.ctx = self.ctx
        self._wake_hooks = [
            m.register_forward_hook(self._mask_sleep_bias)
            for m in snn.modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None
        ]

    def reset(self) -> None:
        """Clear all membrane potentials and running read-outs."""
        for module in self.stateful:
            module.reset()

    def _mask_sleep_bias(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        """Sleep steps carry no bias: subtract it from the sleep-step slices of time-folded outputs."""
        ctx = self.ctx
        mask = ctx.input_mask()
        if mask is None or output.shape[0] != ctx.steps * ctx.batch or ctx.neurons_run == 0:
            return None
        seq = output.view(ctx.steps, ctx.batch, *output.shape[1:])
        sleep = torch.tensor([not w for w in mask], device=output.device)
        shape = (-1,) + (1,) * (output.dim() - 2) if output.dim() > 2 else (-1,)
        seq[sleep] -= module.bias.view(shape)
        return seq.view_as(output)

    def _simulate(self, x: torch.Tensor, wake: list[bool], readout_at: list[int], record: bool) -> Any:
        ctx = self.ctx
        ctx.steps, ctx.batch, ctx.wake = len(wake), x.shape[0], wake
        ctx.readout_at, ctx.record, ctx.neurons_run = readout_at, record, 0
        return self.net(x)

    @torch.no_grad()
    def anytime(self, x: torch.Tensor, timesteps: list[int], record: bool = False) -> dict[int, Any]:
        """Simulate once to ``max(timesteps)`` effective steps; return ``{T: output}`` for each requested T."""
        timesteps = sorted(set(check_timesteps(timesteps)))
        wake, readout = self.schedule.plan(timesteps[-1])
        self.reset()
        out = self._simulate(x, wake, [readout[t] for t in timesteps], record)
        return dict(zip(timesteps, split_batch(out, len(timesteps))))

    def forward(self, x: torch.Tensor, timesteps: int = 4) -> Any:
        """Output after ``timesteps`` effective steps, starting from a reset state."""
        return self.anytime(x, [timesteps])[check_timesteps(timesteps)[0]]

    @torch.no_grad()
    def stream(self, x: torch.Tensor, steps: int = 1) -> Any:
        """Continue the simulation for ``steps`` more steps without resetting (state carries over)."""
        check_timesteps(steps)
        return self._simulate(x, [True] * steps, [steps - 1], record=self.ctx.record)

    def steps_total(self, timesteps: int) -> int:
        return self.schedule.steps_total(timesteps)
