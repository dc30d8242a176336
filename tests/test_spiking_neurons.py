"""Neuron dynamics against their closed forms: IF ≡ QCFS on constant input, PASCAL ≡ QCFS on any input,
signed IF and CIF bounds and residual correction (methods.md §1.2, §3a, §4a, §5a, Appendix A)."""
import pytest
import torch
from torch import nn

from spikedet.spiking import CIFNeuron, IFNeuron, QCFS, SignedIFNeuron, SpikingNetwork, convert
from spikedet.spiking.functional import cif_steps, if_steps, pascal_accumulate

LEVELS = [1, 2, 4, 8, 16]


def qcfs_counts(z: torch.Tensor, lam: float, levels: int, shift: float = 0.5) -> torch.Tensor:
    """The QCFS level index k (h = λ·k/L) as integers."""
    q = QCFS(levels=levels, clip=lam, shift=shift).to(z.dtype)
    with torch.no_grad():
        return torch.round(q(z) * levels / q.clip).long()


def spike_counts(out: torch.Tensor) -> torch.Tensor:
    """Net spike count per neuron of a ``[T, ...]`` train of ±θ spikes, as integers."""
    return (out > 0).sum(0) - (out < 0).sum(0)


def uneven_inputs(steps: int, n: int, theta: float, seed: int = 0) -> torch.Tensor:
    """Appendix A's inputs: i.i.d. N(0.4, 0.8)·θ per step."""
    g = torch.Generator().manual_seed(seed)
    return (0.4 + 0.8 * torch.randn(steps, n, generator=g, dtype=torch.float64)) * theta


def random_currents(n: int, lam: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, generator=g, dtype=torch.float64) * 2.0 - 0.5) * lam  # [-λ/2, 1.5 λ)


@pytest.mark.parametrize("levels", LEVELS)
def test_if_constant_input_equals_qcfs(levels):
    lam = 1.37
    z = random_currents(20000, lam, levels)
    expected = qcfs_counts(z, lam, levels)
    neuron = IFNeuron(lam).double()
    assert torch.equal(spike_counts(neuron.multi_step(z, constant_steps=levels)), expected)
    neuron.reset()  # the same constant current given as a time-varying sequence
    assert torch.equal(spike_counts(neuron.multi_step(z.expand(levels, -1))), expected)


@pytest.mark.parametrize("levels", LEVELS)
def test_if_ties_on_exact_grid(levels):
    """Currents on a grid of λ/(4L) (float32, exact), including every tie z = (k − ½)λ/L: fire on ≥ = floor."""
    lam = 2.0
    z = torch.arange(-8 * levels, 8 * levels + 1, dtype=torch.float32) * lam / (4 * levels)
    out = if_steps(z, torch.full_like(z, lam / 2), torch.tensor(lam), levels, constant=True)
    assert torch.equal(spike_counts(out), qcfs_counts(z, lam, levels))


@pytest.mark.parametrize("levels", LEVELS)
def test_if_network_path_equals_qcfs(levels):
    """An IFNeuron inside a SpikingNetwork (time folded into the batch, constant analog input)."""
    lam = 0.9
    model = nn.Sequential(QCFS(levels=levels, clip=lam), nn.Identity()).double()
    snn = SpikingNetwork(convert(model, readouts=["1"]))
    assert isinstance(snn.net[0], IFNeuron)
    z = random_currents(4 * 3 * 7 * 7, lam, levels).view(4, 3, 7, 7)
    rate = snn(z, levels)  # mean over T of θ·s
    counts = torch.round(rate * levels / snn.net[0].threshold.double()).long()
    assert torch.equal(counts, qcfs_counts(z, lam, levels))


@pytest.mark.parametrize("t_in,levels", [(2, 4), (3, 8), (1, 4), (4, 4), (8, 2), (12, 4), (6, 1)])
def test_pascal_equals_qcfs_on_uneven_input(t_in, levels):
    lam = 1.3
    q = torch.tensor(lam / levels, dtype=torch.float64)
    g = torch.Generator().manual_seed(t_in * 10 + levels)
    n = 20000
    x = torch.randn(t_in, n, generator=g, dtype=torch.float64) * lam * torch.rand(1, n, generator=g)
    big = torch.rand(n, generator=g) < 0.3
    x[-1, big] *= 8.0  # a large current arriving last
    out = pascal_accumulate(x, q, levels)
    assert out.shape == (levels, n)
    assert set(out.unique().tolist()) <= {0.0, q.item()}
    assert torch.all(out[1:] <= out[:-1])  # front-loaded emission
    counts = torch.round(out.sum(0) / q).long()
    u = x.sum(0) / q + 0.5
    expected = torch.clamp(torch.floor(u), 0, levels).long()
    clear = (u - torch.round(u)).abs() > 1e-3  # away from the float tolerance band at exact multiples of q
    assert clear.double().mean() > 0.99
    assert torch.equal(counts[clear], expected[clear])
    assert expected.min() == 0 and expected.max() == levels  # both clip ends are exercised


@pytest.mark.parametrize("t_in,levels", [(3, 4), (8, 4), (2, 8)])
def test_pascal_exact_grid_with_ties(t_in, levels):
    q = torch.tensor(0.25)  # dyadic: every partial sum below is exact in float32
    g = torch.Generator().manual_seed(t_in)
    x = torch.randint(-24, 25, (t_in, 5000), generator=g).float() * q / 8
    x[-1, ::3] *= 6
    counts = torch.round(pascal_accumulate(x, q, levels).sum(0) / q).long()
    expected = torch.clamp(torch.floor(x.sum(0) / q + 0.5), 0, levels).long()
    assert torch.equal(counts, expected)


@pytest.mark.parametrize("steps", [4, 8])
def test_signed_if_never_negative_and_beats_if(steps):
    theta = 1.0
    x = uneven_inputs(steps, 20000, theta)
    target = torch.clamp(torch.floor(x.sum(0) / theta + 0.5), 0, steps).long()

    signed = SignedIFNeuron(theta).double()
    out = signed.multi_step(x)
    assert set(out.unique().tolist()) <= {-theta, 0.0, theta}
    running = torch.cumsum((out > 0).long() - (out < 0).long(), 0)
    assert running.min() >= 0  # a negative spike only retracts an earlier positive one
    assert torch.equal(running[-1], signed.count.long())

    plain = spike_counts(IFNeuron(theta).double().multi_step(x))
    err_signed = (running[-1] - target).abs().double().mean()
    err_plain = (plain - target).abs().double().mean()
    exact_signed = (running[-1] == target).double().mean()
    exact_plain = (plain == target).double().mean()
    assert err_signed < 0.7 * err_plain  # Appendix A: ≈2.5× lower
    appendix_a = {4: (0.89, 0.77), 8: (0.85, 0.67)}  # exact fraction: signed IF, IF
    assert exact_signed.item() == pytest.approx(appendix_a[steps][0], abs=0.03)
    assert exact_plain.item() == pytest.approx(appendix_a[steps][1], abs=0.03)


@pytest.mark.parametrize("wake", [4, 8])
def test_cif_bounds_and_sleep_exactness(wake):
    theta = 0.75
    sleep = wake
    x = torch.cat([uneven_inputs(wake, 20000, theta, seed=wake), torch.zeros(sleep, 20000, dtype=torch.float64)])
    flags = [True] * wake + [False] * sleep
    neuron = CIFNeuron(theta).double()
    neuron.ctx.wake = flags
    out = neuron.multi_step(x)
    assert set(out.unique().tolist()) <= {-theta, 0.0, theta}
    running = torch.cumsum((out > 0).long() - (out < 0).long(), 0)
    wake_seen = torch.cumsum(torch.tensor(flags, dtype=torch.long), 0).view(-1, 1)
    assert running.min() >= 0
    assert torch.all(running <= wake_seen)  # at every step, count ≤ wake steps so far
    target = torch.clamp(torch.floor(x.sum(0) / theta), 0, wake).long()
    assert torch.equal(running[-1], target)  # Appendix A: exact after S = T sleep steps
    # without the sleep phase the count is not exact (Appendix A: 0.90 / 0.86 of the neurons)
    no_sleep = (running[wake - 1] == target).double().mean().item()
    assert no_sleep == pytest.approx({4: 0.90, 8: 0.86}[wake], abs=0.03)
    assert neuron.wake_steps.item() == wake


def test_cif_constant_input_is_off_in_sleep():
    """A constant (analog) current is switched off in sleep steps; a time-varying one is integrated."""
    theta, wake, sleep = 1.0, 4, 4
    z = torch.tensor([0.3, 0.6, 1.2, -0.4, 0.9], dtype=torch.float64)
    flags = [True] * wake + [False] * sleep
    out = cif_steps(z, torch.zeros_like(z), torch.zeros_like(z), torch.zeros((), dtype=z.dtype),
                    torch.tensor(theta), wake + sleep, flags, constant=True)
    expected = torch.clamp(torch.floor(wake * z / theta), 0, wake).long()
    assert torch.equal(spike_counts(out), expected)
    out_if = if_steps(z, torch.full_like(z, 0.5), torch.tensor(theta), wake + sleep, constant=True, input_mask=flags)
    # plain IF has no cap: the residual of z > θ keeps firing in sleep, but only the wake current is integrated
    expected_if = torch.clamp(torch.floor(wake * z / theta + 0.5), 0, wake + sleep).long()
    assert torch.equal(spike_counts(out_if), expected_if)


def test_neuron_state_reset():
    neuron = IFNeuron(1.0)
    x = torch.rand(3, 10)
    first = neuron.multi_step(x)
    assert neuron.v is not None
    neuron.reset()
    assert neuron.v is None
    assert torch.equal(neuron.multi_step(x), first)


def test_zero_steps_rejected():
    with pytest.raises(ValueError):
        IFNeuron(1.0).multi_step(torch.rand(5), constant_steps=0)
