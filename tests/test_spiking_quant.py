"""QCFS: forward formula, straight-through gradients (z and λ), noisy quantization, gradient clamp, arguments."""
import pytest
import torch

from spikedet.spiking import QCFS


def qcfs_formula(z: torch.Tensor, lam: float, levels: int, shift: float) -> torch.Tensor:
    """methods.md §1.2: λ · clip(floor(z·L/λ + φ) / L, 0, 1)."""
    return lam * torch.clamp(torch.floor(z * levels / lam + shift) / levels, 0.0, 1.0)


@pytest.mark.parametrize("levels", [1, 2, 3, 4, 8, 16])
@pytest.mark.parametrize("shift", [0.0, 0.25, 0.5, 0.75])
@pytest.mark.parametrize("lam", [0.7, 2.5])
def test_forward_matches_formula(levels, shift, lam):
    torch.manual_seed(levels)
    z = torch.randn(4000, dtype=torch.float64) * 1.5 * lam  # negatives, inside, above the clip
    q = QCFS(levels=levels, clip=lam, shift=shift).double()
    lam = q.clip.item()  # λ as stored (float32 → float64)
    with torch.no_grad():
        out = q(z)
    torch.testing.assert_close(out, qcfs_formula(z, lam, levels, shift), rtol=0, atol=1e-12)
    assert out.unique().numel() <= levels + 1  # only the L + 1 levels 0, λ/L, ..., λ
    assert out.min() == 0 and out.max() == pytest.approx(lam)


def test_threshold_is_abs_clip():
    q = QCFS(clip=3.0)
    with torch.no_grad():
        q.clip.fill_(-2.0)
    assert q.threshold.item() == 2.0 and not q.threshold.requires_grad


def _grads(q: QCFS, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-element ∂h/∂z and ∂h/∂λ by autograd, and h."""
    z = z.clone().requires_grad_(True)
    out = q(z)
    dz, dlam = [], []
    for i in range(z.numel()):
        gz, gl = torch.autograd.grad(out[i], (z, q.clip), retain_graph=True)
        dz.append(gz[i])
        dlam.append(gl)
    return torch.stack(dz), torch.stack(dlam), out.detach()


@pytest.mark.parametrize("levels", [2, 4, 8])
def test_gradients_match_analytic(levels):
    q = QCFS(levels=levels, clip=1.7).double()
    lam = q.clip.item()
    torch.manual_seed(0)
    inside = torch.rand(40, dtype=torch.float64) * 0.98 * lam + 0.01 * lam
    below = -torch.rand(10, dtype=torch.float64) - 0.01
    above = lam + torch.rand(10, dtype=torch.float64) + 0.01
    z = torch.cat([inside, below, above])
    dz, dlam, h = _grads(q, z)
    n_in, n_below = len(inside), len(below)
    # ∂h/∂z: 1 inside (0, λ), 0 outside (straight-through floor, clipped)
    assert torch.equal(dz[:n_in], torch.ones(n_in, dtype=torch.float64))
    assert torch.equal(dz[n_in:], torch.zeros(len(z) - n_in, dtype=torch.float64))
    # ∂h/∂λ: (h − z)/λ inside, 0 below, 1 above the clip (the corrected derivative, methods.md §1.2)
    torch.testing.assert_close(dlam[:n_in], (h[:n_in] - inside) / lam)
    assert torch.equal(dlam[n_in:n_in + n_below], torch.zeros(n_below, dtype=torch.float64))
    torch.testing.assert_close(dlam[n_in + n_below:], torch.ones(len(above), dtype=torch.float64))


def test_fixed_clip_has_no_gradient():
    q = QCFS(levels=4, clip=1.0, learn_clip=False, shift=0.0)
    z = torch.rand(10, requires_grad=True)
    q(z).sum().backward()
    assert q.clip.grad is None and z.grad is not None


def test_noise_p_skips_quantization_in_training_only():
    lam, p = 2.0, 0.3
    q = QCFS(levels=4, clip=lam, noise_p=p).double()
    torch.manual_seed(0)
    z = torch.rand(40000, dtype=torch.float64) * lam  # inside the clip, almost never on a level
    quantized = qcfs_formula(z, lam, 4, 0.5)
    q.train()
    out = q(z)
    analog = out != quantized
    assert abs(analog.double().mean().item() - p) < 0.015
    torch.testing.assert_close(out[analog], z[analog])  # the skipped ones are the clipped analog value
    q.eval()
    torch.testing.assert_close(q(z), quantized, rtol=0, atol=1e-12)


@pytest.mark.parametrize("clamp", [False, True])
def test_clamp_grad(clamp):
    q = QCFS(levels=4, clip=1.0, learn_clip=False, shift=0.0, clamp_grad=clamp)
    torch.manual_seed(0)
    z = torch.cat([torch.rand(50) * 0.98 + 0.01, torch.tensor([-0.5, 1.5])]).requires_grad_(True)
    upstream = torch.randn(52) * 5
    (q(z) * upstream).sum().backward()
    expected = upstream.clamp(-1, 1) if clamp else upstream
    torch.testing.assert_close(z.grad[:50], expected[:50])
    assert torch.equal(z.grad[50:], torch.zeros(2))
    if clamp:
        assert z.grad.abs().max() <= 1.0


@pytest.mark.parametrize("kwargs", [{"levels": 0}, {"levels": -2}, {"shift": 1.0}, {"shift": -0.1},
                                    {"noise_p": 1.0}, {"noise_p": -0.5}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        QCFS(**kwargs)
