"""Pipeline latency of layer-sequential (PASCAL) networks, from the slowest chain of neurons in the graph."""
from __future__ import annotations

import torch

from spikedet.recipes import get_recipe
from spikedet.spiking import SpikingNetwork, convert
from spikedet.spiking.latency import longest_path, pipeline_steps

from spiking_nets import READOUTS, small_detector


def test_longest_chain_follows_residuals_concats_and_reused_pools() -> None:
    """SmallDetector: stem → down → block (residual add) → pool → mid → pool twice → upsample, concat → fuse:
    5 neurons in a row; the residual shortcut and the concat's other branch are shorter."""
    network = get_recipe("pascal").build(small_detector(levels=4), READOUTS)
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    assert longest_path(network, x, lambda m: 1) == 5
    assert longest_path(network, x, lambda m: 0) == 0


def test_pascal_pipeline_counts_integrate_correct_and_readout_steps() -> None:
    network = get_recipe("pascal").build(small_detector(levels=4), READOUTS)
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    assert pipeline_steps(network, x, 2) == 5 * (2 + 4 - 1) + 2  # T < L: L − 1 correction steps per layer
    assert pipeline_steps(network, x, 8) == 5 * (8 + 8 - 1) + 8


def test_per_layer_levels_change_the_pipeline() -> None:
    net = small_detector(levels=4)
    net.fuse.act.levels = 8
    network = get_recipe("pascal").build(net, READOUTS)
    assert pipeline_steps(network, torch.rand(1, 3, 16, 16, dtype=torch.float64), 2) == 4 * (2 + 4 - 1) + (2 + 8 - 1) + 2


def test_online_networks_have_no_pipeline_delay() -> None:
    assert pipeline_steps(SpikingNetwork(convert(small_detector(), READOUTS)), torch.rand(1, 3, 16, 16, dtype=torch.float64), 4) is None
