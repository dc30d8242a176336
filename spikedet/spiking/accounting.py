"""Firing rates, synaptic operations and an energy estimate (methods.md §5 / peers.md §5).

Convention (Yao et al., and most SNN detection papers): a synaptic layer ``l`` costs ``MACs_l`` multiply-
accumulates in the ANN and ``SOP_l = Σ_t r_{l,t} · MACs_l`` accumulates in the SNN, with ``r_{l,t}`` the
fraction of non-zero inputs at step t. The analog-input layer (before the first neuron) sees real-valued input
and is counted as MACs; it runs once per image, since its input is constant over the steps. Energy:
``E = E_MAC · MACs_analog + E_AC · Σ SOP`` with 45 nm FP32 costs by default (4.6 pJ/MAC, 0.9 pJ/AC).
Compute-only: memory access and neuron updates are not included. An input that is the sum of two coincident
spikes (a residual add) counts as one event, a slight under-count for residual blocks.
Layers after the read-out (decoding, DFL) stay in ANN arithmetic and are excluded from both sides.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from torch import nn

from .convert import is_analog
from .counting import coded_step_counts
from .exact_inputs import survey_inputs
from .layer import ReadOut
from .neuron import SpikingNeuron
from .runtime import SpikingNetwork

__all__ = ["ENERGY_PRESETS", "SpikeMonitor", "layer_macs"]

# pJ per operation, Horowitz (ISSCC 2014), 45 nm
ENERGY_PRESETS: dict[str, dict[str, float]] = {
    "fp32": {"mac_pj": 4.6, "ac_pj": 0.9},
    "fp16": {"mac_pj": 1.5, "ac_pj": 0.4},
    "int8": {"mac_pj": 0.23, "ac_pj": 0.03},
}


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulates of one conv/linear application per image (output of batch 1)."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return int(output[0].numel() * kh * kw * module.in_channels // module.groups)
    if isinstance(module, nn.Linear):
        return int(output[0].numel() * module.in_features)
    raise TypeError(f"no MAC count for {type(module).__name__}")


@dataclass
class _Synapse:
    name: str
    macs: int = 0
    analog: bool = False
    nonzero: torch.Tensor | None = None  # per step, summed over images (float64, on the network's device)
    input_size: int = 0  # input elements per image per step


def _spike_coded_inputs(network: SpikingNetwork) -> dict[str, torch.Tensor]:
    """``{layer: 1 / quantum}`` of the synaptic layers whose input is 0/1 codes of a per-channel quantum: their
    events are counted by a sum (:func:`.counting.coded_step_counts`). Empty for a network the code survey cannot
    run (one that takes no image): every input is then counted element by element."""
    try:
        codes = survey_inputs(network).codes
    except RuntimeError:
        return {}
    return {name: 1.0 / code.quantum for name, code in codes.items() if (code.low, code.high) == (0, 1)}


def _accumulate(total: torch.Tensor | None, per_step: torch.Tensor) -> torch.Tensor:
    """``total + per_step`` step by step in float64, extended with zeros to the longer of the two; stays on
    the device (no host sync per layer)."""
    if total is None:
        return per_step.to(torch.float64, copy=True)  # our own: it is added to in place
    per_step = per_step.double()
    if len(total) < len(per_step):
        total = torch.cat([total, total.new_zeros(len(per_step) - len(total))])
    total[: len(per_step)] += per_step
    return total


class SpikeMonitor:
    """Collects per-layer statistics of a :class:`SpikingNetwork` while it runs with ``record=True``.

    Counts are kept per simulated step, so one simulation to ``T_max`` yields the numbers for every shorter
    prefix: ``report(T)`` reads them for the first ``steps`` simulated steps.
    """

    def __init__(self, network: SpikingNetwork) -> None:
        self.network = network
        self.images = 0
        self.synapses: dict[str, _Synapse] = {}
        self.neurons: dict[str, SpikingNeuron] = {}
        self._spikes: dict[str, torch.Tensor] = {}  # per neuron layer and step, on the network's device
        self.neuron_size: dict[str, int] = {}
        self._hooks = []
        self._inverse_quanta = _spike_coded_inputs(network)
        # a read-out's layer is counted through its ReadOut; analog (post-read-out) layers are not counted
        skip = {id(m) for r in network.net.modules() if isinstance(r, ReadOut) for m in r.layer.modules()}
        for name, module in network.net.named_modules():
            if isinstance(module, ReadOut):
                self._hooks.append(module.register_forward_hook(self._synapse_hook(name, module.layer)))
            elif isinstance(module, (nn.Conv2d, nn.Linear)) and id(module) not in skip and not is_analog(module):
                self._hooks.append(module.register_forward_hook(self._synapse_hook(name, module)))
            elif isinstance(module, SpikingNeuron):
                self.neurons[name] = module
                self._hooks.append(module.register_forward_hook(self._neuron_hook(name)))

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()

    def _synapse_hook(self, name: str, layer: nn.Module):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            ctx = self.network.ctx
            if not ctx.record:
                return
            x = inputs[0]
            stat = self.synapses.setdefault(name, _Synapse(name))
            if isinstance(module, ReadOut):
                probe = module.layer(x[:1]) if not stat.macs else None
                stat.macs = stat.macs or layer_macs(module.layer, probe)
            else:
                stat.macs = layer_macs(module, output)
            if ctx.neurons_run == 0 or ctx.is_constant(x.shape[0]):
                stat.analog = True
                return
            inverse = self._inverse_quanta.get(name)
            if inverse is not None:
                inverse = self._inverse_quanta[name] = inverse.to(x.device)
                per_step = coded_step_counts(x, ctx.steps, inverse)
            else:  # one full count per step: faster than a per-row sum of (x != 0), which materialises the mask
                per_step = torch.stack([torch.count_nonzero(step) for step in x.split(x.shape[0] // ctx.steps)])
            stat.input_size = x[0].numel()
            stat.nonzero = _accumulate(stat.nonzero, per_step)
        return hook

    def _neuron_hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            ctx = self.network.ctx
            if not ctx.record:
                return
            if name == next(iter(self.neurons)):
                self.images += ctx.batch
            # counted by the neuron itself while recording
            self._spikes[name] = _accumulate(self._spikes.get(name), module.step_spikes)
            self.neuron_size[name] = output[0].numel()
        return hook

    @property
    def spikes(self) -> dict[str, list[float]]:
        """Spikes per neuron layer and simulated step, summed over the images recorded."""
        return {name: counts.tolist() for name, counts in self._spikes.items()}

    def report(self, steps: int, preset: str = "fp32") -> dict:
        """Per-image statistics over the first ``steps`` simulated steps, as a JSON-ready dict."""
        if preset not in ENERGY_PRESETS:
            raise ValueError(f"unknown energy preset '{preset}'; choose from {sorted(ENERGY_PRESETS)}")
        if self.images == 0:
            raise ValueError("no images were recorded: run the network with record=True first")
        cost = ENERGY_PRESETS[preset]
        layers, sops, macs_analog, macs_ann = [], 0.0, 0.0, 0.0
        for stat in self.synapses.values():
            macs_ann += stat.macs
            if stat.analog:
                macs_analog += stat.macs
                layers.append({"layer": stat.name, "kind": "analog", "macs": stat.macs, "input_rate": None, "sops": 0.0})
                continue
            events = float(stat.nonzero[:steps].sum()) / self.images
            rate = events / (stat.input_size * steps) if stat.input_size else 0.0
            layer_sops = rate * steps * stat.macs
            sops += layer_sops
            layers.append({"layer": stat.name, "kind": "spiking", "macs": stat.macs, "input_rate": rate, "sops": layer_sops})
        neuron_rates = {}
        total_spikes, total_neuron_steps = 0.0, 0
        for name, counts in self.spikes.items():
            spikes = sum(counts[:steps]) / self.images
            neuron_steps = self.neuron_size[name] * steps
            neuron_rates[name] = spikes / neuron_steps
            total_spikes += spikes
            total_neuron_steps += neuron_steps
        energy_snn = (cost["mac_pj"] * macs_analog + cost["ac_pj"] * sops) * 1e-9  # pJ → mJ
        return {
            "steps": steps,
            "preset": preset,
            "firing_rate": total_spikes / total_neuron_steps if total_neuron_steps else 0.0,
            "spikes": total_spikes,
            "sops": sops,
            "macs_analog": macs_analog,
            "ann_macs": macs_ann,
            "energy_mj": energy_snn,
            "ann_energy_mj": cost["mac_pj"] * macs_ann * 1e-9,
            "layers": layers,
            "neuron_rates": neuron_rates,
        }

    def table(self, steps: int, preset: str = "fp32") -> str:
        """A per-layer text table followed by the totals."""
        rep = self.report(steps, preset)
        lines = [f"{'layer':<32} {'kind':<8} {'MACs':>12} {'in rate':>8} {'SOPs':>12}"]
        for row in rep["layers"]:
            rate = "-" if row["input_rate"] is None else f"{row['input_rate']:.3f}"
            lines.append(f"{row['layer']:<32} {row['kind']:<8} {row['macs']:>12,} {rate:>8} {row['sops']:>12,.0f}")
        lines.append(
            f"steps={steps} firing_rate={rep['firing_rate']:.4f} SOPs={rep['sops']:,.0f} "
            f"SNN {rep['energy_mj']:.4f} mJ vs ANN {rep['ann_energy_mj']:.4f} mJ ({preset})"
        )
        return "\n".join(lines)

    def to_json(self, steps: int, preset: str = "fp32") -> str:
        return json.dumps(self.report(steps, preset), indent=2)
