"""Reading a spikedet checkpoint into a model: an ANN, or a spiking network rebuilt with its stored recipe.

>>> loaded = load_model("weights/yolov8n_qcfs_l4_synthetic.pt")   # LoadedAnn or LoadedSnn, whichever it holds
>>> ann = load_model(path, expect="ann").model                     # a one-line CheckpointError for an SNN
>>> snn = load_model(path, expect="snn").network                   # ... and for an ANN

Converting an ANN is :func:`~spikedet.engine.recipe_run.build_snn`, not loading.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, overload

from torch import nn

from ..checkpoint import CheckpointError, load_checkpoint
from ..models.family import get_family
from ..recipes import Recipe
from ..resources import shipped
from ..spiking.neuron import SpikingNeuron
from ..spiking.runtime import SpikingNetwork
from .recipe_run import build_snn

__all__ = ["DEFAULT_SNN", "DEFAULT_WEIGHTS", "LoadedAnn", "LoadedSnn", "load_model", "resolve_weights", "source_ann"]

DEFAULT_WEIGHTS = shipped("weights/yolov8n_qcfs_l4_synthetic.pt")
# What `make run` shows: the recommended online recipe, qcfs + spike-aware fine-tuning, of the default model.
DEFAULT_SNN = shipped("weights/yolov8n_qcfs_l4_synthetic_ft.pt")


@dataclass(frozen=True)
class LoadedAnn:
    """An ANN checkpoint read back: the quantized (or SiLU) ``model`` in eval mode, its ``config``, its ``path``."""

    model: nn.Module
    config: dict[str, Any]
    path: Path
    kind: ClassVar[str] = "ann"


@dataclass(frozen=True)
class LoadedSnn:
    """A spiking checkpoint read back: the ``network``, its ``config``, its ``path`` and the ``recipe`` it was
    converted with."""

    network: SpikingNetwork
    config: dict[str, Any]
    path: Path
    recipe: Recipe
    kind: ClassVar[str] = "snn"

    @property
    def ann_path(self) -> Path | None:
        """The ANN checkpoint this network was converted from, when the config names it and it is found."""
        return source_ann(self.config, self.path)


def resolve_weights(weights: str | Path | None) -> Path:
    """``weights``, or the shipped default model with a hint on how to get it when it is missing."""
    if weights is not None:
        return Path(weights)
    if not DEFAULT_WEIGHTS.is_file():
        raise CheckpointError(
            f"default weights {DEFAULT_WEIGHTS} not found: train them with tools/train_det.py (see README) "
            "or pass --weights"
        )
    return DEFAULT_WEIGHTS


@overload
def load_model(weights: str | Path, *, expect: Literal["ann"]) -> LoadedAnn: ...
@overload
def load_model(weights: str | Path, *, expect: Literal["snn"]) -> LoadedSnn: ...
@overload
def load_model(weights: str | Path, *, expect: None = None) -> LoadedAnn | LoadedSnn: ...


def load_model(weights: str | Path, *, expect: Literal["ann", "snn"] | None = None) -> LoadedAnn | LoadedSnn:
    """The model a spikedet checkpoint holds, of any detector family: a :class:`LoadedAnn` or a :class:`LoadedSnn`.

    ``expect`` ("ann" or "snn") refuses a checkpoint of the other kind with a one-line :class:`CheckpointError`,
    before anything is built. A missing, foreign or damaged checkpoint is a one-line CheckpointError too.
    """
    if expect not in (None, "ann", "snn"):
        raise ValueError(f"expect must be 'ann', 'snn' or None, got {expect!r}")
    path = Path(weights)
    config, state, kind = load_checkpoint(path, kind=expect)
    if kind == "ann":
        model = _rebuild(weights, config)
        _load_weights(weights, model, state)
        return LoadedAnn(model=model.eval(), config=config, path=path)
    ann = _rebuild(weights, config).eval()
    try:
        recipe = Recipe.from_dict(config["recipe"])
        network = build_snn(ann, recipe)
    except Exception as err:  # noqa: BLE001  (a damaged recipe fails inside the converter in many ways)
        raise CheckpointError(f"{weights}: its conversion recipe cannot be applied ({_reason(err)})") from None
    for name, module in network.net.named_modules():
        stored = state.get(f"{name}.v0")
        if isinstance(module, SpikingNeuron) and stored is not None:
            module.v0 = stored.clone()  # calibrated potentials may be per channel
    _load_weights(weights, network.net, state)
    return LoadedSnn(network=network, config=config, path=path, recipe=recipe)


def source_ann(config: dict[str, Any], snn_path: str | Path) -> Path | None:
    """The ANN checkpoint a spiking checkpoint was converted from (``ann_weights`` in its config), or None.

    The stored path is absolute on the machine that converted it; a copy of the ANN beside the spiking
    checkpoint (shipped weights move together) is found by its file name."""
    stored = config.get("ann_weights")
    if not stored:
        return None
    # the copy beside the spiking checkpoint first: shipped weights move together, and the stored absolute path
    # may name another checkout's file
    for candidate in (Path(snn_path).parent / Path(stored).name, Path(stored)):
        if candidate.is_file():
            return candidate
    return None


def _rebuild(weights: str | Path, config: dict[str, Any]) -> nn.Module:
    """The untrained module a checkpoint config describes; a config that builds nothing is a CheckpointError."""
    try:
        return get_family(config.get("family", "yolo")).from_config(config)
    except Exception as err:  # noqa: BLE001  (model builders fail in many ways on a damaged config)
        raise CheckpointError(f"{weights}: its config does not describe a buildable model ({_reason(err)})") from None


def _load_weights(weights: str | Path, module: nn.Module, state: dict) -> None:
    """``module.load_state_dict(state)``; missing, extra or mis-shaped tensors are one CheckpointError line."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        first = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
        raise CheckpointError(f"{weights}: weights do not fit the model its config describes ({first})") from None


def _reason(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no detail'}"
