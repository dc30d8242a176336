"""The five seed recipes: each one's property from methods.md, on a small detector-like net and on YOLO."""
from __future__ import annotations

import pytest
import torch

from spikedet.recipes import Recipe, available_recipes, get_recipe
from spikedet.spiking import COSNeuron, PascalNeuron, SpikingNetwork, convert
from spikedet.spiking import functional as F
from spikedet.spiking.calibrate import calibrate_layerwise

from spiking_nets import READOUTS, small_detector, with_levels

SEED_RECIPES = ["qcfs", "cos", "dual_phase", "casc", "fast_snn", "fast_snn_ft", "pascal"]


@torch.no_grad()
def mean_error(recipe: str, net: torch.nn.Module, x: torch.Tensor, timesteps: int) -> float:
    network = get_recipe(recipe).build(net, READOUTS)
    return float((network(x, timesteps) - with_levels(net, timesteps)(x)).abs().mean())


def test_all_seed_recipes_are_configured() -> None:
    assert set(SEED_RECIPES) <= set(available_recipes())
    for name in SEED_RECIPES:
        recipe = get_recipe(name)
        assert Recipe.from_dict(recipe.to_dict()) == recipe


def test_recipe_config_errors(tmp_path, monkeypatch) -> None:
    import spikedet.recipes as recipes

    monkeypatch.setattr(recipes, "CONFIG_DIR", tmp_path)
    (tmp_path / "bad.yaml").write_text("neuron: lif\n")
    with pytest.raises(ValueError, match="unknown neuron 'lif'"):
        get_recipe("bad")
    (tmp_path / "worse.yaml").write_text("schedule: {kind: jumpy}\n")
    with pytest.raises(ValueError, match="unknown schedule 'jumpy'"):
        get_recipe("worse")


@pytest.mark.parametrize("timesteps", [1, 2, 3, 4, 8])
def test_pascal_equals_the_quantized_ann_exactly(timesteps: int) -> None:
    """Spike accumulation: the SNN equals the QANN (levels L = 4) at every T, not only T = L."""
    net = small_detector(levels=4)
    x = torch.rand(3, 3, 16, 16, dtype=torch.float64)
    network = get_recipe("pascal").build(net, READOUTS)
    assert any(isinstance(m, PascalNeuron) for m in network.net.modules())
    torch.testing.assert_close(network(x, timesteps), net(x), atol=1e-9, rtol=0)


def test_pascal_emits_spikes_when_steps_reach_levels() -> None:
    """With T ≥ L every step carries at most one quantum: a binary spike train of value q·T."""
    total = torch.linspace(-1, 6, 101, dtype=torch.float64) * 4
    out = F.pascal_emit(total, torch.tensor(1.0, dtype=torch.float64), levels=4, steps=8)
    assert set(out.unique().tolist()) <= {0.0, 2.0}
    mean_input = total / 8
    torch.testing.assert_close(out.mean(0), torch.clamp(torch.floor(mean_input * 4 + 0.5), 0, 4) / 4)


@pytest.mark.parametrize("timesteps", [4, 8])
def test_casc_with_enough_sleep_is_exact(timesteps: int) -> None:
    """CIF + wake/sleep (sleep ≥ T after each wake block) equals the ClipQuan ANN with L = T."""
    net = small_detector(levels=timesteps, casc=True)
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    recipe = get_recipe("casc")
    recipe = Recipe(recipe.name, recipe.neuron, type(recipe.schedule)(wake=timesteps, sleep=timesteps))
    network = recipe.build(net, READOUTS)
    torch.testing.assert_close(network(x, timesteps), net(x), atol=1e-9, rtol=0)
    assert network.steps_total(timesteps) == 2 * timesteps


@pytest.mark.parametrize("recipe", ["cos", "fast_snn"])
def test_offset_fixes_reduce_the_error_of_qcfs(recipe: str) -> None:
    """COS and signed IF shrink the unevenness error of the plain IF neuron (methods.md Appendix A)."""
    errors = {name: [] for name in ("qcfs", recipe)}
    for seed in range(3):
        net = small_detector(levels=4, seed=seed)
        x = torch.rand(4, 3, 16, 16, dtype=torch.float64)
        for name in errors:
            errors[name].append(mean_error(name, net, x, 4))
    assert sum(errors[recipe]) < sum(errors["qcfs"]), errors


def test_cos_reports_its_pre_run() -> None:
    recipe = get_recipe("cos")
    network = recipe.build(small_detector(), READOUTS)
    assert all(m.rho == recipe.schedule.rho for m in network.net.modules() if isinstance(m, COSNeuron))
    assert network.steps_total(4) == 4 + recipe.schedule.rho
    assert network.steps_total(2) == 2 + 2  # the pre-run of a shorter T sees only T steps
    assert network.restarting_neurons() == ["COSNeuron"]  # so each T is simulated on its own


def test_cos_offset_shifts_by_one_threshold() -> None:
    """Over-fired → v0 − θ, under-fired → v0 + θ, consistent → unchanged (single-neuron cases)."""
    theta = torch.tensor(1.0)
    x = torch.tensor([[1.2, 0.0, 0.3], [-1.0, 0.0, 0.3]])  # over-fired, under-fired (late input), even
    x[1, 1] = 0.0
    late = torch.tensor([[0.0], [1.6]])
    v0 = F.cos_offset(x, torch.tensor(0.5), theta, rho=2)
    assert v0[0].item() == pytest.approx(0.5 - 1.0)  # fired at step 1 on 1.7, ends at -0.3
    assert v0[2].item() == 0.5
    assert F.cos_offset(late, torch.tensor(0.5), theta, rho=2).item() == pytest.approx(0.5 + 1.0)


def test_dual_phase_calibration_reduces_the_layer_mismatch_on_held_back_images() -> None:
    net = small_detector(levels=4, seed=1)
    network = SpikingNetwork(convert(net, READOUTS))
    calib = torch.rand(16, 3, 16, 16, dtype=torch.float64)
    report = calibrate_layerwise(network, net, calib, timesteps=2, holdout=0.25)
    assert len(report.layers) == 5  # the stem, down, block, mid and fuse neurons (reduce is unused with pools)
    assert all(layer["after"] <= layer["before"] for layer in report.layers.values())
    assert any(layer["after"] < layer["before"] for layer in report.layers.values())
    held = torch.rand(8, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    fresh = SpikingNetwork(convert(net, READOUTS))
    with torch.no_grad():
        target = with_levels(net, 2)(held)
        before = float((fresh(held, 2) - target).pow(2).mean())
        after = float((network(held, 2) - target).pow(2).mean())
    assert after < before


def test_dual_phase_needs_two_images() -> None:
    net = small_detector()
    with pytest.raises(ValueError, match="at least 2 images"):
        calibrate_layerwise(SpikingNetwork(convert(net, READOUTS)), net, torch.rand(1, 3, 16, 16, dtype=torch.float64), 2)


@pytest.mark.parametrize(
    "recipe, levels, settings",
    [
        ("dual_phase", 3, dict(shift=True, weight_fit="surrogate", weight_steps=10, lr=1e-2)),
        ("fast_snn_ft", 7, dict(shift=False, weight_fit="ann_proxy", weight_steps=10, lr=1e-2)),
    ],
)
def test_weight_calibration_reduces_the_layer_mismatch_on_held_back_images(recipe: str, levels: int, settings: dict) -> None:
    """Dual-Phase's surrogate BPTT and Fast-SNN's ANN-proxy fine-tuning: each layer keeps an update only if it
    lowers the held-back error, so no layer gets worse and some get better."""
    net = small_detector(levels=levels, seed=2)
    network = get_recipe(recipe).build(net, READOUTS)
    calib = torch.rand(16, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    conv_before = network.net.stem.conv.weight.clone()
    report = calibrate_layerwise(network, net, calib, timesteps=3, holdout=0.25, **settings)
    kept = {layer["kept"] for layer in report.layers.values()}
    assert kept <= ({"original", "shift", "weights+shift"} if settings["shift"] else {"original", "weights"})
    assert any(layer["kept"].startswith("weights") for layer in report.layers.values())
    assert all(layer["after"] <= layer["before"] for layer in report.layers.values())
    assert any(layer["after"] < layer["before"] for layer in report.layers.values())
    if recipe == "fast_snn_ft":  # Fast-SNN leaves the analog first layer alone
        assert report.layers["stem.act"]["kept"] == "original"
        assert torch.equal(network.net.stem.conv.weight, conv_before)


def test_dual_phase_weight_fit_stops_early_when_held_back_error_stops_falling(monkeypatch) -> None:
    """Layer-local BPTT checks the held-back images every ``check_every`` steps and stops after ``patience``
    checks without improvement: a diverging learning rate stops each layer long before ``weight_steps``."""
    net = small_detector(levels=3, seed=2)
    calib = torch.rand(16, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    steps = []
    adam_step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: (steps.append(1), adam_step(self, *a, **k))[1])

    def run(patience: int) -> int:
        steps.clear()
        network = get_recipe("dual_phase").build(net, READOUTS)
        report = calibrate_layerwise(network, net, calib, timesteps=3, weight_steps=40, lr=10.0, check_every=2,
                                     patience=patience)
        assert all(layer["after"] <= layer["before"] for layer in report.layers.values())
        return len(steps)

    layers = 5
    assert run(patience=1) <= layers * 4  # no better at the first or second check: stopped by step 4 of 40
    assert run(patience=100) == layers * 40


def test_dual_phase_weight_fit_that_never_improves_leaves_the_weights_as_they_were(monkeypatch) -> None:
    """Every optimizer step makes the fit worse: early stopping must return the starting weights, so the
    "weights+shift" candidate is the original weights with a second shift (held-back error of the shift's size),
    not the spoiled weights of the last step."""
    net = small_detector(levels=3, seed=2)
    calib = torch.rand(16, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def spoil(self, *args, **kwargs) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.data.add_(1.0)

    monkeypatch.setattr(torch.optim.Adam, "step", spoil)
    network = get_recipe("dual_phase").build(net, READOUTS)
    weights = {k: v.clone() for k, v in network.net.state_dict().items() if k.endswith("weight")}
    report = calibrate_layerwise(network, net, calib, timesteps=3, weight_steps=10, lr=1e-2, check_every=2, patience=1)
    for layer in report.layers.values():
        errors = layer["candidates"]
        assert errors["weights+shift"] <= 1.5 * max(errors["original"], errors["shift"]) + 1e-12
    assert any(layer["kept"] == "weights+shift" for layer in report.layers.values())
    assert all(torch.equal(network.net.state_dict()[k], w) for k, w in weights.items())


def test_unknown_weight_fit_is_refused() -> None:
    net = small_detector()
    network = SpikingNetwork(convert(net, READOUTS))
    with pytest.raises(ValueError, match="unknown weight_fit 'adam'"):
        calibrate_layerwise(network, net, torch.rand(4, 3, 16, 16, dtype=torch.float64), 2, weight_fit="adam")


def test_override_recipe_changes_only_existing_knobs() -> None:
    from spikedet.recipes import override_recipe

    recipe = override_recipe(get_recipe("dual_phase"), {"calibration.weight_steps": "20", "calibration.lr": "1e-3"})
    assert recipe.calibration["weight_steps"] == 20 and recipe.calibration["lr"] == 1e-3
    assert get_recipe("dual_phase").calibration["weight_steps"] == 10  # the YAML default is untouched
    assert override_recipe(get_recipe("cos"), {"schedule.rho": "2"}).schedule.rho == 2
    assert override_recipe(get_recipe("pascal"), {"neuron_args.tol": "1e-6"}).neuron_args["tol"] == 1e-6
    with pytest.raises(ValueError, match="has no 'weight_step'"):
        override_recipe(get_recipe("dual_phase"), {"calibration.weight_step": "20"})
    with pytest.raises(ValueError, match="has no calibration"):
        override_recipe(get_recipe("qcfs"), {"calibration.images": "8"})
    with pytest.raises(ValueError, match="use neuron_args.NAME"):
        override_recipe(get_recipe("qcfs"), {"levels": "8"})
