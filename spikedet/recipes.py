"""Conversion recipes, read from ``configs/convert/<name>.yaml`` (methods.md §8, recipe table).

A recipe composes the core's parts: a neuron (with its arguments), a temporal schedule and an optional
data-driven calibration. Whether one simulation may serve every T is the network's to say
(:meth:`~spikedet.spiking.runtime.SpikingNetwork.restarting_neurons`), not the recipe's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from .resources import shipped
from .spiking.calibrate import CALIBRATIONS
from .spiking.convert import convert
from .spiking.neuron import NEURONS
from .spiking.runtime import SpikingNetwork
from .spiking.schedule import SCHEDULES, OnlineSchedule, Schedule

__all__ = ["CONFIG_DIR", "Recipe", "available_recipes", "data_free_recipe", "get_recipe", "override_recipe", "parse_scalar"]

CONFIG_DIR = shipped("configs/convert")


@dataclass(frozen=True)
class Recipe:
    """How a quantized ANN becomes a spiking network.

    ``calibration`` (Dual-Phase, Fast-SNN fine-tuning) holds the calibrator's settings.
    """

    name: str
    neuron: str = "if"
    schedule: Schedule = OnlineSchedule()
    neuron_args: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None

    def build(self, ann: nn.Module, readouts: list[str], analog: list[str] = ()) -> SpikingNetwork:
        args = {**self.neuron_args, **self.schedule.neuron_args()}
        snn = convert(ann, readouts, neuron=self.neuron, analog=list(analog), neuron_args=args)
        return SpikingNetwork(snn, schedule=self.schedule)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "neuron": self.neuron, "neuron_args": dict(self.neuron_args),
            "schedule": {"kind": _schedule_name(self.schedule), **vars(self.schedule)},
            "calibration": self.calibration,
        }


    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> "Recipe":
        """Inverse of :meth:`to_dict` (a spiking checkpoint stores its recipe this way). Older checkpoints also
        store ``anytime``, which the network now answers itself (its neurons know whether they are online):
        the key is ignored."""
        return cls(
            name=spec["name"], neuron=spec["neuron"], schedule=_schedule(spec["schedule"]),
            neuron_args=dict(spec.get("neuron_args") or {}), calibration=spec.get("calibration"),
        )


def available_recipes() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _schedule_name(schedule: Schedule) -> str:
    return next(name for name, cls in SCHEDULES.items() if type(schedule) is cls)


def _schedule(spec: str | dict[str, Any]) -> Schedule:
    """A recipe's ``schedule``: a registered kind, or a mapping with ``kind`` and the schedule's settings.
    Checkpoints written before the registry name the class (``OnlineSchedule``); those still load."""
    spec = {"kind": spec} if isinstance(spec, str) else dict(spec)
    by_class = {cls.__name__: cls for _, cls in SCHEDULES.items()}
    kind = spec.get("kind")
    return (by_class[kind] if kind in by_class else SCHEDULES.get(kind)).from_spec(spec)


def get_recipe(name: str | Path) -> Recipe:
    """Load a recipe by name (``configs/convert/<name>.yaml``) or from a YAML file's path; an unknown name lists
    the available ones."""
    path = Path(name) if str(name).endswith((".yaml", ".yml")) else CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown method '{name}'; available: {', '.join(available_recipes())}")
    name = path.stem
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable YAML recipe ({str(error).splitlines()[0]})") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: a recipe is a mapping (neuron, schedule, ...), got {type(spec).__name__}")
    for section in ("neuron_args", "calibration"):
        if spec.get(section) is not None and not isinstance(spec[section], dict):
            raise ValueError(f"{path}: '{section}' must be a mapping, got {spec[section]!r}")
    neuron = spec.get("neuron", "if")
    if not isinstance(neuron, str) or neuron not in NEURONS:
        raise ValueError(f"{path}: unknown neuron '{neuron}' ({', '.join(NEURONS.names())})")
    calibration = spec.get("calibration")
    if calibration is not None and (not isinstance(calibration.get("kind"), str) or calibration["kind"] not in CALIBRATIONS):
        raise ValueError(f"{path}: unknown calibration '{calibration.get('kind')}' ({' | '.join(CALIBRATIONS)})")
    try:
        schedule = _schedule(spec.get("schedule", "online"))
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: {error}") from None
    return Recipe(
        name=name, neuron=neuron, schedule=schedule,
        neuron_args=dict(spec.get("neuron_args") or {}), calibration=calibration,
    )


def data_free_recipe(name: str | Path) -> Recipe:
    """The recipe ``name``, refused when it calibrates on data: tools that convert on the fly have no training
    images, so such a recipe is converted once with ``convert_det.py`` and its SNN checkpoint used instead."""
    recipe = get_recipe(name)
    if recipe.calibration is not None:
        raise ValueError(f"--method {recipe.name} calibrates on data: convert first (tools/convert_det.py --method "
                         f"{recipe.name}) and pass the SNN checkpoint it writes as --weights")
    return recipe


def parse_scalar(text: str) -> Any:
    """A YAML scalar, with ``1e-3``-style floats (YAML 1.1 reads those as strings) as numbers."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def override_recipe(recipe: Recipe, settings: dict[str, str]) -> Recipe:
    """The recipe with some YAML knobs changed: ``{"calibration.weight_steps": "20", "neuron_args.tol": "1e-6"}``.

    Keys are ``section.name`` with section ``neuron_args``, ``calibration`` or ``schedule``; values are parsed as
    YAML scalars. Only knobs the recipe's YAML already has can be set, so a typo never passes silently.
    """
    spec = recipe.to_dict()
    for key, text in settings.items():
        section, _, name = key.partition(".")
        if section not in ("neuron_args", "calibration", "schedule") or not name:
            raise ValueError(f"recipe setting '{key}': use neuron_args.NAME, calibration.NAME or schedule.NAME")
        if not spec[section]:
            raise ValueError(f"recipe '{recipe.name}' has no {section} to set '{name}' in")
        if name not in spec[section]:
            known = ", ".join(k for k in spec[section] if k != "kind")
            raise ValueError(f"recipe '{recipe.name}': {section} has no '{name}' (it has: {known})")
        spec[section][name] = _same_kind(key, spec[section][name], parse_scalar(text), text)
    return Recipe.from_dict(spec)


def _same_kind(key: str, old: Any, new: Any, text: str) -> Any:
    """``new`` when it is the kind of value the recipe's YAML has for ``key`` (an int may stand for a float);
    otherwise a ValueError naming the setting, so a typo fails here and not deep inside a simulation."""
    if old is None or isinstance(old, str):
        return new if old is None else str(text)
    if isinstance(old, bool):
        ok = isinstance(new, bool)
    elif isinstance(old, int):
        ok = isinstance(new, int) and not isinstance(new, bool)
    elif isinstance(old, float):
        ok = isinstance(new, (int, float)) and not isinstance(new, bool)
        new = float(new) if ok else new
    else:
        ok = type(new) is type(old)
    if not ok:
        kind = {bool: "true or false", int: "an integer", float: "a number"}.get(type(old), type(old).__name__)
        raise ValueError(f"recipe setting '{key}' expects {kind} (like {old!r}), got '{text}'")
    return new
