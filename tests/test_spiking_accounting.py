"""SpikeMonitor: MACs by hand, SOPs from independent hooks, energy formula, prefix reports, errors."""
import pytest
import torch
from spiking_nets import READOUTS, quant, small_detector
from torch import nn

from spikedet.spiking import SpikeMonitor, SpikingNetwork, SpikingNeuron, convert

# per-image MACs k²·Cin·Cout·Hout·Wout of SmallDetector(width=8) on a 16×16 input
HAND_MACS = {
    "stem.conv": 3 * 3 * 3 * 8 * 16 * 16,  # analog input
    "down.conv": 3 * 3 * 8 * 8 * 8 * 8,  # stride 2 → 8×8
    "block.0": 3 * 3 * 8 * 8 * 8 * 8,
    "mid.conv": 1 * 1 * 8 * 8 * 4 * 4,  # after the stride-2 max-pool → 4×4
    "fuse.conv": 1 * 1 * 16 * 8 * 8 * 8,  # concat of the upsampled branch and the residual
    "head": 1 * 1 * 8 * 5 * 8 * 8,  # the read-out
}


@pytest.fixture()
def setup():
    image = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net = SpikingNetwork(convert(small_detector(), READOUTS))
    return net, image


def independent_counts(net: SpikingNetwork, image: torch.Tensor, steps: int) -> tuple[float, float]:
    """SOPs = Σ_layers input_rate·T·MACs and spikes per image, from hooks of this test's own."""
    inputs: dict[str, torch.Tensor] = {}
    spikes: list[float] = []
    hooks = []
    for name, module in net.net.named_modules():
        if name in HAND_MACS:  # for the read-out "head" this is the ReadOut wrapper, which sees the spikes
            hooks.append(module.register_forward_pre_hook(lambda m, a, n=name: inputs.__setitem__(n, a[0].clone())))
        if isinstance(module, SpikingNeuron):
            hooks.append(module.register_forward_hook(
                lambda m, a, out: spikes.append(float((out != 0).sum()) / image.shape[0])))
    net(image, steps)
    for h in hooks:
        h.remove()
    assert set(inputs) == set(HAND_MACS)
    assert inputs["stem.conv"].shape[0] == image.shape[0]  # the analog image, not time-folded
    sops = 0.0
    for name, x in inputs.items():
        if name == "stem.conv":
            continue
        assert x.shape[0] == steps * image.shape[0]
        rate = (x != 0).double().mean().item()  # non-zero inputs per element and step
        sops += rate * steps * HAND_MACS[name]
    return sops, sum(spikes)


@pytest.mark.parametrize("steps", [1, 4])
def test_monitor_counts(setup, steps):
    net, image = setup
    expected_sops, expected_spikes = independent_counts(net, image, steps)
    monitor = SpikeMonitor(net)
    net.anytime(image, [steps], record=True)
    rep = monitor.report(steps)
    layers = {row["layer"]: row for row in rep["layers"]}
    assert set(layers) == set(HAND_MACS)
    assert {n: row["macs"] for n, row in layers.items()} == HAND_MACS
    assert layers["stem.conv"]["kind"] == "analog" and layers["stem.conv"]["sops"] == 0.0
    assert all(row["kind"] == "spiking" for n, row in layers.items() if n != "stem.conv")
    assert rep["macs_analog"] == HAND_MACS["stem.conv"]
    assert rep["ann_macs"] == sum(HAND_MACS.values())
    assert rep["sops"] == pytest.approx(expected_sops, rel=1e-12)
    assert rep["sops"] > 0
    assert rep["spikes"] == pytest.approx(expected_spikes, rel=1e-12)
    assert rep["energy_mj"] == pytest.approx(4.6e-9 * rep["macs_analog"] + 0.9e-9 * rep["sops"], rel=1e-12)
    assert rep["ann_energy_mj"] == pytest.approx(4.6e-9 * rep["ann_macs"], rel=1e-12)
    assert 0 < rep["firing_rate"] < 1
    int8 = monitor.report(steps, preset="int8")
    assert int8["energy_mj"] == pytest.approx(0.23e-9 * rep["macs_analog"] + 0.03e-9 * rep["sops"], rel=1e-12)
    # one count serves both: the neurons' running totals (the demo's rates) and the monitor's per-step lists
    for name, neuron in monitor.neurons.items():
        assert sum(monitor.spikes.get(name, [])) == pytest.approx(float(neuron.spike_count), rel=1e-6)  # unused: 0


def test_prefix_report_equals_separate_simulation(setup):
    net, image = setup
    long = SpikeMonitor(net)
    net.anytime(image, [2, 8], record=True)
    long.close()
    for steps in (2, 5):
        fresh = SpikingNetwork(convert(small_detector(), READOUTS))
        short = SpikeMonitor(fresh)
        fresh.anytime(image, [steps], record=True)
        a, b = long.report(steps), short.report(steps)
        assert a.keys() == b.keys()
        for key in ("sops", "spikes", "firing_rate", "energy_mj", "macs_analog", "ann_macs"):
            assert a[key] == pytest.approx(b[key], rel=1e-12), key
        assert a["neuron_rates"] == pytest.approx(b["neuron_rates"], rel=1e-12)
    assert long.report(8)["sops"] > long.report(2)["sops"]


def test_monitor_errors(setup):
    net, image = setup
    monitor = SpikeMonitor(net)
    with pytest.raises(ValueError, match="no images"):
        monitor.report(4)
    net(image, 4)  # record=False: nothing collected
    with pytest.raises(ValueError, match="no images"):
        monitor.report(4)
    net.anytime(image, [4], record=True)
    with pytest.raises(ValueError, match="unknown energy preset"):
        monitor.report(4, preset="fp64")
    assert "SOPs" in monitor.table(4)


def test_monitor_counts_images_across_calls(setup):
    net, image = setup
    monitor = SpikeMonitor(net)
    net.anytime(image, [3], record=True)
    once = monitor.report(3)
    net.anytime(image, [3], record=True)  # the same batch again: per-image numbers unchanged
    assert monitor.images == 2 * image.shape[0]
    assert monitor.report(3)["sops"] == pytest.approx(once["sops"], rel=1e-12)


def test_linear_readout_macs():
    """A Linear read-out is counted with in_features·out_features MACs."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), quant(4, casc=False), nn.Linear(6, 3)).double().eval()
    net = SpikingNetwork(convert(model, ["3"]))
    monitor = SpikeMonitor(net)
    net.anytime(torch.rand(2, 3, 2, 2, dtype=torch.float64), [4], record=True)
    layers = {row["layer"]: row for row in monitor.report(4)["layers"]}
    assert layers["1"]["macs"] == 12 * 6 and layers["1"]["kind"] == "analog"
    assert layers["3"]["macs"] == 6 * 3 and layers["3"]["kind"] == "spiking"
