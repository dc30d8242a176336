"""quantizer_divergence: where two versions of one network part, layer by layer."""
import copy

import pytest
import torch
from spiking_nets import READOUTS, small_detector

from spikedet.spiking import SpikingNetwork, convert, to_precision
from spikedet.spiking.divergence import quantizer_divergence


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
