"""Data-driven layer-wise calibration: Dual-Phase's Phase II (methods.md §2(c)) and Fast-SNN's layer-wise
fine-tuning (§5(c)).

Calibration runs inside one simulation. Time is folded into the batch, so a neuron layer receives its whole
input sequence before any later layer runs: a forward hook on each neuron can compare the layer's spike rate
with the quantized ANN's activation for the same images, correct the layer, re-run it and pass the corrected
spikes on. Layers are therefore calibrated in order, each on the output of the already calibrated layers
before it, in a single pass.

Per layer:

1. **Potential shift**: ``v0 += T·(E[a] − E[r]) / θ`` per channel, with ``a`` the ANN activation and ``r`` the
   SNN rate (by the rate identity, shifting ``v(0)`` by Δ shifts ``T·r`` by about Δ). The paper shifts each
   neuron (C×H×W); spikedet shifts each channel so that the detector keeps working at any input size.
2. **Weight calibration** (optional): the synaptic layer feeding the neuron (conv weight and bias) is trained
   for a few steps with a surrogate gradient through the T-step simulation to match ``a`` (MSE; the paper's KL
   over softmax of all positions is dominated by large activations, and detection is regression-sensitive).
3. **Potential shift** again.

The best of the states after 1, 2 and 3 (and the original) is kept, judged on held-back calibration images
(never the evaluation split), as the paper does with its calibration-validation set.

Fast-SNN (``shift=False, weight_fit="ann_proxy"``) skips the shifts and fits the weights with its "ANN
gradient, SNN value" proxy: a copy of the ANN layer (conv + the quantized activation, λ frozen) runs on the mean
input rate, its forward value is replaced by the SNN layer's true output rate, and the MSE to the ANN activation
back-propagates through the proxy only; SGD with momentum. The first layer (analog input) is left as is, as in
the paper; an update is kept only if it lowers the held-back error.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ..env import quiet
from .neuron import SpikingNeuron
from .quant import QCFS
from .runtime import SpikingNetwork
from .surrogate import if_steps_surrogate

__all__ = ["CALIBRATIONS", "CalibrationReport", "WEIGHT_FITS", "calibrate_layerwise", "calibrate_with_recipe", "calibration_settings"]

WEIGHT_FITS = ("surrogate", "ann_proxy")
# A recipe's ``calibration.kind`` → its defaults (the recipe yaml may override each).
CALIBRATIONS: dict[str, dict[str, object]] = {
    "dual_phase": {"shift": True, "weight_fit": "surrogate", "lr": 1e-4, "weight_steps": 0, "check_every": 5, "patience": 2},
    "fast_snn": {"shift": False, "weight_fit": "ann_proxy", "lr": 1e-3, "weight_steps": 20},
}


@dataclass
class CalibrationReport:
    """What calibration changed: per layer, the held-back MSE before and after, which state was kept, and each
    candidate state's held-back MSE."""

    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    images: int = 0

    def summary(self) -> str:
        improved = sum(1 for v in self.layers.values() if v["after"] < v["before"])
        return (
            f"calibrated {len(self.layers)} layers on {self.images} images in {self.seconds:.1f} s; "
            f"held-back error reduced in {improved}"
        )


def _synaptic_layer(net: nn.Module, neuron_name: str) -> nn.Conv2d | None:
    """The conv feeding a neuron: the ``conv`` sibling of an ultralytics-style ``Conv`` (conv, bn, act), or the
    nearest conv before it in an ``nn.Sequential(conv, bn, act)`` block (SSD), with only a folded BN between."""
    parent_name, _, attr = neuron_name.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    conv = getattr(parent, "conv", None)
    if attr == "act" and isinstance(conv, nn.Conv2d):
        return conv
    if isinstance(parent, nn.Sequential):
        names = list(parent._modules)
        for before in reversed(names[: names.index(attr)]):
            module = parent._modules[before]
            if isinstance(module, nn.Conv2d):
                return module
            if not isinstance(module, nn.Identity):  # BN folded at conversion became Identity
                break
    return None


@torch.no_grad()
def _ann_targets(ann: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    targets: dict[str, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, name=name: targets.__setitem__(name, out.detach()))
        for name, m in ann.named_modules()
        if isinstance(m, QCFS)
    ]
    try:
        ann.eval()(images)
    finally:
        for h in hooks:
            h.remove()
    return targets


def _qcfs_proxy(z: torch.Tensor, act: QCFS) -> torch.Tensor:
    """The ANN activation with λ frozen and a straight-through floor: Fast-SNN's differentiable proxy."""
    lam = act.threshold
    x = (z / lam).clamp(0.0, 1.0)
    return lam * (x + (torch.floor(x * act.levels + act.shift) / act.levels - x).detach())


def calibrate_layerwise(
    network: SpikingNetwork,
    ann: nn.Module,
    images: torch.Tensor,
    timesteps: int,
    holdout: float = 0.25,
    weight_steps: int = 0,
    lr: float = 1e-4,
    shift: bool = True,
    weight_fit: str = "surrogate",
    check_every: int = 5,
    patience: int = 2,
) -> CalibrationReport:
    """Calibrate ``network`` (converted from ``ann``) in place on ``images`` ``[N, 3, H, W]`` at ``timesteps``.

    ``holdout`` of the images judge which state each layer keeps; ``weight_steps > 0`` enables the weight fit,
    ``weight_fit`` chooses it (``"surrogate"``: Dual-Phase's BPTT with Adam, stopped early when the held-back error
    has not improved for ``patience`` checks ``check_every`` steps apart; ``"ann_proxy"``: Fast-SNN's proxy with
    SGD); ``shift`` enables Dual-Phase's potential shifts.
    """
    if weight_fit not in WEIGHT_FITS:
        raise ValueError(f"unknown weight_fit '{weight_fit}'; choose from {', '.join(WEIGHT_FITS)}")
    if images.shape[0] < 2:
        raise ValueError("calibration needs at least 2 images (some are held back to judge each layer)")
    n_hold = max(1, int(round(images.shape[0] * holdout)))
    fit, hold = slice(0, images.shape[0] - n_hold), slice(images.shape[0] - n_hold, None)
    start = time.perf_counter()
    targets = _ann_targets(ann, images)
    ann_acts = {name: m for name, m in ann.named_modules() if isinstance(m, QCFS)}
    report = CalibrationReport(images=images.shape[0])
    net = network.net
    names = {m: n for n, m in net.named_modules() if isinstance(m, SpikingNeuron)}
    if not set(names.values()) & set(targets):
        raise ValueError("no ANN activation matches a neuron layer: was the network converted from this ANN?")
    ctx = network.ctx
    busy = set()

    def rerun(neuron: SpikingNeuron, x: torch.Tensor) -> torch.Tensor:
        neuron.reset()
        return neuron.forward(x)

    def mean_over_time(folded: torch.Tensor) -> torch.Tensor:
        """``[T·B, ...]`` (time folded into the batch) → its mean over the T steps, ``[B, ...]``."""
        return folded.view(ctx.steps, ctx.batch, *folded.shape[1:]).mean(0)

    def hold_error(out: torch.Tensor, target: torch.Tensor) -> float:
        rate = mean_over_time(out)
        return float((rate[hold] - target[hold]).pow(2).mean())

    def shift_potential(neuron: SpikingNeuron, out: torch.Tensor, target: torch.Tensor) -> None:
        rate = mean_over_time(out)
        delta = ctx.steps * (target[fit] - rate[fit]).mean(dim=(0, 2, 3)) / neuron.threshold
        neuron.v0 = (neuron.v0 + delta.view(-1, 1, 1)).detach()

    def layer_current(conv: nn.Conv2d, conv_in: torch.Tensor, part: slice) -> tuple[torch.Tensor, bool]:
        """The conv's output for the ``part`` images: ``[T, b, ...]``, or a constant ``[b, ...]`` (analog input)."""
        if conv_in.shape[0] == ctx.batch:
            return conv(conv_in[part]), True
        seq = conv_in.view(ctx.steps, ctx.batch, *conv_in.shape[1:])[:, part]
        out = conv(seq.flatten(0, 1))
        return out.view(ctx.steps, -1, *out.shape[1:]), False

    def surrogate_rate(neuron: SpikingNeuron, current: torch.Tensor, constant: bool) -> torch.Tensor:
        """The neuron's mean output over T, differentiable through Dual-Phase's tanh surrogate (reset kept)."""
        theta = neuron.threshold.detach()
        out, _ = if_steps_surrogate(current, neuron.v0 * theta, theta, ctx.steps, constant=constant,
                                    fire_ge=neuron.fire_ge, surrogate="tanh", detach_reset=False)
        return out.mean(0)

    def fit_weights(neuron: SpikingNeuron, conv: nn.Conv2d, conv_in: torch.Tensor, target: torch.Tensor) -> None:
        """Layer-local BPTT (Adam, cosine schedule) with early stopping on the held-back images: the conv keeps
        the state with the lowest held-back error (its start included), checked every ``check_every`` steps."""
        params = [conv.weight] + ([conv.bias] if conv.bias is not None else [])
        opt = torch.optim.Adam(params, lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=weight_steps)

        def held_back_error() -> float:
            with torch.no_grad():
                current, constant = layer_current(conv, conv_in, hold)
                return float((surrogate_rate(neuron, current, constant) - target[hold]).pow(2).mean())

        # the start is a candidate too: a fit that never beats it leaves the original weights in place
        best, best_state, stale = held_back_error(), {k: v.clone() for k, v in conv.state_dict().items()}, 0
        for step in range(1, weight_steps + 1):
            opt.zero_grad()
            with torch.enable_grad():
                current, constant = layer_current(conv, conv_in, fit)
                loss = (surrogate_rate(neuron, current, constant) - target[fit]).pow(2).mean()
                loss.backward()
            opt.step()
            schedule.step()
            if step % check_every and step < weight_steps:
                continue
            error = held_back_error()
            if error < best:
                best, best_state, stale = error, {k: v.clone() for k, v in conv.state_dict().items()}, 0
            else:
                stale += 1
                if stale >= patience:
                    break
        conv.load_state_dict(best_state)

    def fit_weights_proxy(neuron: SpikingNeuron, conv: nn.Conv2d, conv_in: torch.Tensor, target: torch.Tensor) -> None:
        act = ann_acts[names[neuron]]
        mean_in = mean_over_time(conv_in)[fit]  # conv is linear in time
        params = [conv.weight] + ([conv.bias] if conv.bias is not None else [])
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
        for _ in range(weight_steps):
            with torch.no_grad():
                out = rerun(neuron, conv(conv_in))
                rate = mean_over_time(out)[fit]
            with torch.enable_grad():
                opt.zero_grad()
                proxy = _qcfs_proxy(conv(mean_in), act)
                value = proxy + (rate - proxy).detach()  # SNN value, ANN gradient
                loss = (value - target[fit]).pow(2).mean()
                loss.backward()
                opt.step()

    conv_inputs: dict[nn.Module, torch.Tensor] = {}

    def remember_input(conv: nn.Module, inputs: tuple) -> None:
        conv_inputs[conv] = inputs[0]

    def calibrate_layer(neuron: SpikingNeuron, inputs: tuple, out: torch.Tensor) -> torch.Tensor | None:
        if neuron in busy:
            return None
        busy.add(neuron)
        name = names[neuron]
        if name not in targets:
            raise ValueError(f"neuron layer '{name}' has no ANN activation: was the network converted from this ANN?")
        x, target = inputs[0], targets[name]
        conv = _synaptic_layer(net, name)
        candidates = [("original", hold_error(out, target), neuron.v0.clone(), None, out)]
        if shift:
            shift_potential(neuron, out, target)
            out = rerun(neuron, x)
            candidates.append(("shift", hold_error(out, target), neuron.v0.clone(), None, out))
        conv_in = conv_inputs.get(conv)
        time_varying = conv_in is not None and conv_in.shape[0] == ctx.steps * ctx.batch
        if weight_steps and conv_in is not None and (weight_fit == "surrogate" or time_varying):
            saved = {k: v.clone() for k, v in conv.state_dict().items()}
            if weight_fit == "surrogate":
                fit_weights(neuron, conv, conv_in, target)
            else:
                fit_weights_proxy(neuron, conv, conv_in, target)
            # the neuron's input changed with the weights: recompute it from the remembered conv input
            with torch.no_grad():
                x = conv(conv_in) if conv_in.shape[0] == x.shape[0] else x
            out = rerun(neuron, x)
            if shift:
                shift_potential(neuron, out, target)
                out = rerun(neuron, x)
            weights = {k: v.clone() for k, v in conv.state_dict().items()}
            label = "weights+shift" if shift else "weights"
            candidates.append((label, hold_error(out, target), neuron.v0.clone(), weights, out))
            conv.load_state_dict(saved)
        kept, error, v0, weights, out = min(candidates, key=lambda c: c[1])
        neuron.v0 = v0
        if weights is not None:
            conv.load_state_dict(weights)
        report.layers[name] = {"before": candidates[0][1], "after": error, "kept": kept,
                               "candidates": {c[0]: c[1] for c in candidates}}
        bar.update(1)
        busy.discard(neuron)
        # the kept candidate's output flows on; the neuron's end state does not matter, the runtime resets it
        return out

    hooks = [m.register_forward_hook(calibrate_layer) for m in names]
    if weight_steps:
        orphans = [n for n in names.values() if _synaptic_layer(net, n) is None]
        if orphans:
            raise ValueError(f"weight calibration: no conv found feeding neuron layer(s) {orphans[:3]}")
        hooks += [
            conv.register_forward_pre_hook(remember_input)
            for conv in (_synaptic_layer(net, n) for n in names.values())
            if conv is not None
        ]
    # calibration takes minutes with weight fits: one bar step per layer (--quiet hides it)
    bar = tqdm(total=len(names), desc=f"calibrating T={timesteps}", unit="layer", leave=False, disable=quiet())
    try:
        with torch.no_grad():
            network(images, timesteps)
    finally:
        bar.close()
        for h in hooks:
            h.remove()
    report.seconds = time.perf_counter() - start
    return report


def calibration_settings(calibration: dict) -> dict:
    """A recipe's ``calibration`` section over the defaults of its kind."""
    return {**CALIBRATIONS[calibration["kind"]], **calibration}


def calibrate_with_recipe(
    network: SpikingNetwork, ann: nn.Module, images: torch.Tensor, timesteps: int, *, calibration: dict
) -> CalibrationReport:
    """:func:`calibrate_layerwise` with a recipe's ``calibration`` section (``images`` chose the images already)."""
    settings = calibration_settings(calibration)
    return calibrate_layerwise(
        network, ann, images, timesteps, holdout=float(settings.get("holdout", 0.25)),
        weight_steps=int(settings["weight_steps"]), lr=float(settings["lr"]), shift=bool(settings["shift"]),
        weight_fit=str(settings["weight_fit"]), check_every=int(settings.get("check_every", 5)),
        patience=int(settings.get("patience", 2)),
    )
