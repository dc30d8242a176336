"""Counting by sums (spikedet.spiking.counting): the exact counts of count_nonzero, in every layout."""
import pytest
import torch
from spiking_nets import READOUTS, small_detector

from spikedet.spiking import SpikeMonitor, SpikingNetwork, convert
from spikedet.spiking.counting import coded_step_counts, step_counts


def spikes(shape, rate: float, seed: int, *, signed: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    s = (torch.rand(shape, generator=g) < rate).float()
    if signed:
        s = s * torch.where(torch.rand(shape, generator=g) < 0.3, -1.0, 1.0)
    return s


def per_step_nonzero(x: torch.Tensor, steps: int) -> torch.Tensor:
    return torch.stack([torch.count_nonzero(s) for s in x.split(x.shape[0] // steps)]).float()


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_step_counts_exact(signed, layout):
    theta = torch.tensor(0.3711)
    # 4 steps of 2.6 M elements at a high rate: large float32 sums, still exact integers
    s = spikes((4, 16, 16, 100, 100), 0.6, 0, signed=signed)
    out = (s.flatten(0, 1) * theta).contiguous(memory_format=layout).unflatten(0, (4, 16))
    counts = step_counts(out, theta, signed=signed)
    assert counts.dtype == torch.float64 and torch.equal(counts, per_step_nonzero(out.flatten(0, 1), 4).double())
    assert counts[0] > 1.5e6


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_coded_step_counts_exact(layout):
    """A concat of two sources with different θ (and an upsampled one), time-folded, as a conv sees it."""
    steps, batch = 3, 4
    quantum = torch.cat([torch.full((5,), 0.7), torch.full((3,), 0.013)])
    s = spikes((steps * batch, 8, 40, 40), 0.4, 1)
    x = (s * quantum.view(1, -1, 1, 1)).contiguous(memory_format=layout)
    counts = coded_step_counts(x, steps, 1.0 / quantum)
    assert torch.equal(counts, per_step_nonzero(x, steps).double())


def test_monitor_sums_where_the_survey_finds_codes():
    """The monitor counts the spike-coded inputs by sums and the others (a residual sum) element by element:
    the report is identical to counting every input element by element."""
    image = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net = SpikingNetwork(convert(small_detector(), READOUTS))
    summed = SpikeMonitor(net)
    assert set(summed._inverse_quanta) == {"down.conv", "block.0"}  # fuse.conv's input holds a residual sum
    net.anytime(image, [1, 4], record=True)
    summed.close()
    counted = SpikeMonitor(net)
    counted._inverse_quanta = {}
    net.anytime(image, [1, 4], record=True)
    for steps in (1, 4):
        assert summed.report(steps) == counted.report(steps)
    assert summed.report(4)["sops"] > 0


def test_step_counts_beyond_float32_integers():
    """A step with more spikes than float32 holds as integers (2^24): counted per channel, added in float64."""
    theta = torch.tensor(0.25)
    out = torch.full((1, 1, 9, 1400, 1400), 0.25)  # 17.64 M spikes in one step
    assert step_counts(out, theta, signed=False).tolist() == [9 * 1400 * 1400]
    assert 9 * 1400 * 1400 > 2**24
