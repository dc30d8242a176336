"""Temporal schedules (methods.md §8.4): which simulated steps are wake steps and where read-outs fall."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .registry import Registry

__all__ = ["SCHEDULES", "register_schedule", "Schedule", "OnlineSchedule", "PreRunSchedule", "WakeSleepSchedule"]

# a recipe's ``schedule:`` kind → its class (built from the YAML's other keys)
SCHEDULES: Registry[type["Schedule"]] = Registry("schedule")
register_schedule = SCHEDULES.register


@dataclass(frozen=True)
class Schedule:
    """Maps effective time steps T to simulated steps.

    ``plan(T)`` returns the per-step wake flags of a simulation that delivers T effective (wake) steps and,
    for each effective ``t ≤ T``, the index of the simulated step after which its read-out is complete.
    """

    def plan(self, timesteps: int) -> tuple[list[bool], dict[int, int]]:
        raise NotImplementedError

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Schedule":
        """Built from a recipe YAML's ``schedule`` mapping (its ``kind`` key aside); unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(spec) - known - {"kind"})
        if unknown:
            raise ValueError(f"schedule {cls.__name__} has no setting {', '.join(unknown)} (it has: {', '.join(sorted(known)) or 'none'})")
        return cls(**{k: v for k, v in spec.items() if k in known})

    def neuron_args(self) -> dict[str, Any]:
        """Extra keyword arguments this schedule gives every neuron (COS's pre-run length)."""
        return {}

    def simulated_steps(self, timesteps: int) -> int:
        """Steps the network is run for to deliver T effective steps (sleep steps included)."""
        return len(self.plan(timesteps)[0])

    def steps_total(self, timesteps: int) -> int:
        """The honest latency in steps: simulated steps plus any pre-run."""
        return self.simulated_steps(timesteps)


@register_schedule("online")
@dataclass(frozen=True)
class OnlineSchedule(Schedule):
    """Every step is a wake step: T effective steps take T simulated steps."""

    def plan(self, timesteps: int) -> tuple[list[bool], dict[int, int]]:
        return [True] * timesteps, {t: t - 1 for t in range(1, timesteps + 1)}


@register_schedule("wake_sleep")
@dataclass(frozen=True)
class WakeSleepSchedule(Schedule):
    """CASC: blocks of ``wake`` steps with input and bias on, then ``sleep`` steps with both off.

    The read-out for ``t`` wake steps is taken after the sleep block that follows the t-th wake step, so the
    residual it leaves is drained first (a partial last block gets its sleep steps too).
    """

    wake: int = 4
    sleep: int = 4

    def __post_init__(self) -> None:
        if self.wake < 1 or self.sleep < 0:
            raise ValueError(f"wake-sleep schedule needs wake >= 1 and sleep >= 0, got {self.wake}/{self.sleep}")

    def plan(self, timesteps: int) -> tuple[list[bool], dict[int, int]]:
        flags: list[bool] = []
        readout: dict[int, int] = {}
        done = 0
        while done < timesteps:
            block = min(self.wake, timesteps - done)
            flags += [True] * block
            flags += [False] * self.sleep
            done += block
            readout[done] = len(flags) - 1
        # intermediate read-outs inside a block: after the block's sleep steps only the block end is exact,
        # so t inside a block reads out at the end of its own step
        position = 0
        for i, awake in enumerate(flags):
            if awake:
                position += 1
                readout.setdefault(position, i)
        return flags, readout


@register_schedule("pre_run")
@dataclass(frozen=True)
class PreRunSchedule(OnlineSchedule):
    """COS: each layer first pre-simulates ``rho`` steps of its input, then the T steps. The T-step simulation
    is online; the pre-run adds ``rho`` steps of latency, which ``steps_total`` reports."""

    rho: int = 4

    def __post_init__(self) -> None:
        if self.rho < 1:
            raise ValueError(f"pre-run length rho must be >= 1, got {self.rho}")

    def steps_total(self, timesteps: int) -> int:
        return timesteps + min(self.rho, timesteps)

    def neuron_args(self) -> dict[str, Any]:
        return {"rho": self.rho}
