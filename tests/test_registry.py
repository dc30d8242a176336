"""A new conversion method is one module that registers its parts plus one YAML: the README's example, run."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from spikedet.recipes import get_recipe
from spikedet.spiking import NEURONS, SCHEDULES, QCFS, SpikingNeuron, register_neuron, register_schedule
from spikedet.spiking.schedule import OnlineSchedule


@pytest.fixture(scope="module")
def toy_method() -> None:
    """A hard-reset IF neuron (the membrane drops to 0 after a spike) and a schedule that runs each T twice."""

    @register_neuron("toy_hard_reset")
    class HardResetIF(SpikingNeuron):
        def _run(self, x: torch.Tensor, steps: int, constant: bool) -> torch.Tensor:
            out = []
            for t in range(steps):
                self.v = self.v + (x if constant else x[t])
                spike = (self.v >= self.threshold).to(x.dtype)
                self.v = self.v * (1 - spike)
                out.append(spike * self.threshold)
            return torch.stack(out)

    @register_schedule("toy_double")
    class DoubleSchedule(OnlineSchedule):
        def steps_total(self, timesteps: int) -> int:
            return 2 * timesteps

    yield
    for registry, name in ((NEURONS, "toy_hard_reset"), (SCHEDULES, "toy_double")):
        del registry._entries[name]


def test_a_toy_method_plugs_in_with_one_yaml(toy_method, tmp_path) -> None:
    yaml_path = tmp_path / "toy.yaml"
    yaml_path.write_text("neuron: toy_hard_reset\nschedule: toy_double\n")
    recipe = get_recipe(yaml_path)
    assert recipe.name == "toy" and recipe.neuron == "toy_hard_reset" and recipe.to_dict()["schedule"]["kind"] == "toy_double"
    net = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), QCFS(levels=4, clip=1.0), nn.Conv2d(2, 1, 1, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[2].weight.fill_(1.0)
    network = recipe.build(net, ["2"])
    assert type(network.net[1]).__name__ == "HardResetIF" and network.schedule.steps_total(4) == 8
    x = torch.full((1, 1, 1, 1), 0.3)
    # v0 = θ/2 = 0.5, input 0.3 per step: spikes at steps 2 and 6 (hard reset to 0 after the first)
    out = network(x, 6)
    assert out.item() == pytest.approx(2 * 2 * 1.0 / 6)  # two channels, each 2 spikes of θ = 1, averaged over 6 steps


def test_registries_refuse_duplicates_and_list_names(toy_method, tmp_path) -> None:
    with pytest.raises(ValueError, match="neuron 'if' is already registered"):
        register_neuron("if")(SpikingNeuron)
    (tmp_path / "bad.yaml").write_text("neuron: toy_soft\n")
    with pytest.raises(ValueError, match="unknown neuron 'toy_soft'.*toy_hard_reset"):
        get_recipe(tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text("schedule: {kind: toy_double, speed: 2}\n")
    with pytest.raises(ValueError, match="bad2.yaml: schedule DoubleSchedule has no setting speed"):
        get_recipe(tmp_path / "bad2.yaml")
