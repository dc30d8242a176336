"""Conversion recipes: a neuron and a temporal schedule, read from ``configs/convert/<name>.yaml``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from torch import nn

from .spiking.convert import NEURONS, convert
from .spiking.runtime import SpikingNetwork
from .spiking.schedule import OnlineSchedule, Schedule, WakeSleepSchedule

__all__ = ["CONFIG_DIR", "Recipe", "available_recipes", "get_recipe"]

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "convert"


@dataclass(frozen=True)
class Recipe:
    """How a quantized ANN becomes a spiking network."""

    name: str
    neuron: str = "if"
    schedule: Schedule = OnlineSchedule()

    def build(self, ann: nn.Module, readouts: list[str], analog: list[str] = ()) -> SpikingNetwork:
        return SpikingNetwork(convert(ann, readouts, neuron=self.neuron, analog=list(analog)), schedule=self.schedule)

    def to_dict(self) -> dict:
        return {"name": self.name, "neuron": self.neuron, "schedule": type(self.schedule).__name__, **vars(self.schedule)}


def available_recipes() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _schedule(spec: str | dict) -> Schedule:
    kind = spec if isinstance(spec, str) else spec.get("kind")
    if kind == "online":
        return OnlineSchedule()
    if kind == "wake_sleep":
        return WakeSleepSchedule(wake=int(spec.get("wake", 4)), sleep=int(spec.get("sleep", 4)))
    raise ValueError(f"unknown schedule '{kind}' (online | wake_sleep)")


def get_recipe(name: str) -> Recipe:
    """Load a recipe by name; an unknown name lists the available ones."""
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown method '{name}'; available: {', '.join(available_recipes())}")
    spec = yaml.safe_load(path.read_text()) or {}
    neuron = spec.get("neuron", "if")
    if neuron not in NEURONS:
        raise ValueError(f"{path}: unknown neuron '{neuron}' ({', '.join(sorted(NEURONS))})")
    return Recipe(name=name, neuron=neuron, schedule=_schedule(spec.get("schedule", "online")))
