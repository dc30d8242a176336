"""quantizer_divergence: where two versions of one network part, layer by layer."""
import copy

import pytest
import torch
from spiking_nets import READOUTS, small_detector

from spikedet.spiking import SpikingNetwork, convert, to_precision
from spikedet.spiking.divergence import int8_sized_noise, quantizer_divergence


# SmallDetector's quantizers in forward order (``reduce`` runs only without max-pools)
REACHED = ["stem.act", "down.act", "block.2", "mid.act", "fuse.act"]


@pytest.fixture()
def image():
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_identical_networks_never_differ(image):
    net = SpikingNetwork(convert(small_detector(), READOUTS))
    layers = quantizer_divergence(net, copy.deepcopy(net), image, timesteps=4)
    assert [layer.layer for layer in layers] == REACHED
    assert all(layer.flipped == 0.0 for layer in layers)


def test_a_perturbed_layer_shows_where_the_networks_part(image):
    ann = small_detector()
    changed = copy.deepcopy(ann)
    changed.block[0].weight.data.mul_(1.5)  # a large change of one middle layer
    a, b = SpikingNetwork(convert(ann, READOUTS)), SpikingNetwork(convert(changed, READOUTS))
    layers = {layer.layer: layer.flipped for layer in quantizer_divergence(a, b, image, timesteps=4)}
    names = list(layers)
    first_changed = names.index("block.2")
    assert all(layers[n] == 0.0 for n in names[:first_changed])  # upstream of the change: identical
    assert layers[names[first_changed]] > 0.0


def test_ann_quantizers_compared_too(image):
    ann = small_detector().float()
    low, _ = to_precision(ann, "int8")
    layers = quantizer_divergence(ann, low, image.float())
    assert [layer.layer for layer in layers] == REACHED
    assert all(0.0 <= layer.flipped <= 1.0 for layer in layers)


def test_different_networks_refused(image):
    a = SpikingNetwork(convert(small_detector(), READOUTS))
    with pytest.raises(ValueError, match="different quantizer layers"):
        quantizer_divergence(a, small_detector(), image)


def test_int8_sized_noise_matches_the_int8_rounding_in_size(image):
    ann = small_detector().float()
    low, report = to_precision(ann, "int8")
    assert report.lowered
    noisy = int8_sized_noise(ann, seed=1)
    again = int8_sized_noise(ann, seed=1)
    other = int8_sized_noise(ann, seed=2)
    for name in report.lowered:
        coded = low.get_submodule(name)
        weight = ann.get_submodule(name).weight
        half_step = coded.weight_scale.view(-1, 1, 1, 1) / coded.weight_quantum() / 2
        rounding = coded.dequantized_weight() / coded.weight_quantum() - weight
        error = noisy.get_submodule(name).weight - weight
        assert bool((error.abs() <= half_step * (1 + 1e-5)).all()) and bool((rounding.abs() <= half_step * (1 + 1e-5)).all())
        assert error.abs().mean() > 0.25 * half_step.mean()  # uniform in ±half a step: mean |e| is a quarter step
        assert torch.equal(noisy.get_submodule(name).weight, again.get_submodule(name).weight)
        assert not torch.equal(noisy.get_submodule(name).weight, other.get_submodule(name).weight)
    kept = [n for n, m in ann.named_modules() if isinstance(m, torch.nn.Conv2d) and n not in report.lowered]
    assert kept and all(torch.equal(ann.get_submodule(n).weight, noisy.get_submodule(n).weight) for n in kept)
