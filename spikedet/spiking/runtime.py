"""Running a converted network: layer-wise (time folded into the batch), anytime read-outs, streaming.

``SpikingNetwork(snn)(x, T)`` simulates T steps and returns the network output built from the read-outs
averaged over T. ``anytime(x, [1, 2, 4, 8])`` simulates once to the largest T and returns the output for every
requested T. ``stream(x, steps)`` continues from the current state (no reset) for frame-to-frame streaming.
The network's output keeps the time-folded layout (read-outs emit their running mean at every step); the
runtime slices out the requested steps.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .context import SimContext
from .convert import is_analog, spiking_modules
from .layer import ReadOut
from .neuron import SpikingNeuron
from .schedule import OnlineSchedule, Schedule

__all__ = ["SpikingNetwork", "check_timesteps", "select_step"]


def check_timesteps(timesteps: int | list[int]) -> list[int]:
    """Validate one or several time-step counts (each an integer ≥ 1)."""
    values = [timesteps] if isinstance(timesteps, int) else list(timesteps)
    if not values:
        raise ValueError("no time steps given")
    for t in values:
        if not isinstance(t, int) or isinstance(t, bool) or t < 1:
            raise ValueError(f"time steps T must be integers >= 1, got {t!r}")
    return values


def select_step(obj: Any, steps: int, batch: int, step: int) -> Any:
    """The slice of simulated step ``step`` of every time-folded ``[steps·batch, ...]`` tensor in a (nested)
    output; a ``[batch, ...]`` tensor is constant over time and other objects are returned as they are."""
    if isinstance(obj, torch.Tensor):
        if obj.dim() > 0 and obj.shape[0] == steps * batch:
            return obj.view(steps, batch, *obj.shape[1:])[step]
        return obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(select_step(o, steps, batch, step) for o in obj)
    if isinstance(obj, dict):
        return {k: select_step(v, steps, batch, step) for k, v in obj.items()}
    return obj


def _sleep_bias(module: nn.Module) -> torch.Tensor | None:
    """The constant term a synaptic layer adds at every step (None if it adds none): conv/linear bias, or the
    offset ``β − μ·γ/σ`` of an eval-mode BatchNorm that could not be folded into a conv."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
        return module.bias
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
        offset = -module.running_mean / torch.sqrt(module.running_var + module.eps)
        return offset * module.weight + module.bias if module.affine else offset
    return None


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
        self._sleep_hooks: list[Any] | None = None
        self._restarting: list[str] | None = None  # restarting_neurons(), found on the first stream()

    def reset(self) -> None:
        """Clear all membrane potentials and running read-outs."""
        for module in self.stateful:
            module.reset()

    def _register_sleep_hooks(self) -> None:
        """Hook every layer with a constant term so that sleep steps carry none. Registered on the first
        simulation with sleep steps only: hooks put every module call on PyTorch's slower path."""
        # read-outs apply their bias to the running mean (so at every step), analog layers are ANN arithmetic
        net = self.net
        exempt = {id(m) for r in net.modules() if isinstance(r, ReadOut) or is_analog(r) for m in r.modules()}
        self._sleep_hooks = [
            m.register_forward_hook(self._mask_sleep_bias)
            for m in net.modules()
            if id(m) not in exempt and _sleep_bias(m) is not None
        ]

    def _mask_sleep_bias(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        """Sleep steps carry no bias: subtract it, in place, from the sleep-step slices of time-folded outputs."""
        ctx = self.ctx
        mask = ctx.input_mask()
        if mask is None or output.shape[0] != ctx.steps * ctx.batch:
            return  # all steps awake, or a constant (analog image) current, which the neuron masks
        seq = output.view(ctx.steps, ctx.batch, *output.shape[1:])
        sleep = torch.tensor([not w for w in mask], device=output.device)
        bias = _sleep_bias(module)
        seq[sleep] -= bias.view((-1,) + (1,) * (output.dim() - 2)) if output.dim() > 2 else bias

    def _simulate(self, x: torch.Tensor, wake: list[bool], record: bool) -> Any:
        if self._sleep_hooks is None and not all(wake):
            self._register_sleep_hooks()
        ctx = self.ctx
        ctx.steps, ctx.batch, ctx.wake = len(wake), x.shape[0], wake
        ctx.record, ctx.neurons_run = record, 0
        ctx.run += 1
        return self.net(x)

    @torch.no_grad()
    def anytime(self, x: torch.Tensor, timesteps: list[int], record: bool = False) -> dict[int, Any]:
        """Simulate once to ``max(timesteps)`` effective steps; return ``{T: output}`` for each requested T."""
        timesteps = sorted(set(check_timesteps(timesteps)))
        wake, readout = self.schedule.plan(timesteps[-1])
        self.reset()
        out = self._simulate(x, wake, record)
        return {t: select_step(out, len(wake), x.shape[0], readout[t]) for t in timesteps}

    def forward(self, x: torch.Tensor, timesteps: int = 4) -> Any:
        """Output after ``timesteps`` effective steps, starting from a reset state."""
        return self.anytime(x, [timesteps])[check_timesteps(timesteps)[0]]

    def restarting_neurons(self) -> list[str]:
        """The neuron types that start every run from its whole input instead of firing as it arrives (see
        :attr:`SpikingNeuron.online`): a network holding any cannot continue a simulation with :meth:`stream`."""
        return sorted({type(m).__name__ for m in self.net.modules() if isinstance(m, SpikingNeuron) and not m.online})

    @torch.no_grad()
    def stream(self, x: torch.Tensor, steps: int = 1) -> Any:
        """Continue the simulation for ``steps`` more steps without resetting (state carries over)."""
        check_timesteps(steps)
        if self._restarting is None:
            self._restarting = self.restarting_neurons()
        if self._restarting:
            raise ValueError(f"{', '.join(self._restarting)} start every run afresh: stream() cannot continue it")
        out = self._simulate(x, [True] * steps, record=self.ctx.record)
        return select_step(out, steps, x.shape[0], steps - 1)

    def steps_total(self, timesteps: int) -> int:
        return self.schedule.steps_total(timesteps)
