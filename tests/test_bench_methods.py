"""The recipe benchmark: each recipe on its own ANN, with its own T list, reported beside that ANN."""
from __future__ import annotations

from pathlib import Path

import pytest

from spikedet.checkpoint import save_checkpoint
from spikedet.cli import parse_assignments, parse_settings
from spikedet.engine.benchmark import benchmark_methods, format_methods, plot_methods_png
from spikedet.engine.loading import load_model


def test_each_recipe_on_its_own_ann(tiny_yolo_checkpoint: tuple[Path, Path], tmp_path: Path) -> None:
    weights, data = tiny_yolo_checkpoint
    loaded = load_model(weights, expect="ann")
    model, config = loaded.model, loaded.config
    model.model[0].conv.weight.data.mul_(0.5)  # a different ANN for pascal
    other = save_checkpoint(tmp_path / "other.pt", model, "ann", config)
    rows = benchmark_methods(
        weights, ["qcfs", "pascal"], data, [1, 2], imgsz=64, batch=8,
        method_weights={"pascal": other}, method_timesteps={"pascal": [3]},
    )
    assert list(rows["methods"]["qcfs"]["snn"]) == ["1", "2"]
    assert list(rows["methods"]["pascal"]["snn"]) == ["3"]
    assert rows["methods"]["qcfs"]["ann"] is rows["ann"]
    assert rows["methods"]["pascal"]["weights"] == str(other)
    table = format_methods(rows)
    assert f"ANN `{other}` (for pascal)" in table
    assert len([line for line in table.splitlines() if line.startswith("| qcfs |")]) == 2
    assert plot_methods_png(rows, tmp_path / "methods.png").stat().st_size > 0


def test_an_ann_for_a_method_not_run_is_refused(tiny_yolo_checkpoint: tuple[Path, Path]) -> None:
    weights, data = tiny_yolo_checkpoint
    with pytest.raises(ValueError, match=r"settings given for \['casc'\]"):
        benchmark_methods(weights, ["qcfs"], data, [1], imgsz=64, method_weights={"casc": weights})


@pytest.mark.parametrize("items, message", [(["casc"], "--ann expects KEY=VALUE"), (["a=1", "a=2"], "given twice")])
def test_parse_assignments_errors(items: list[str], message: str) -> None:
    assert parse_assignments(["casc=x.pt", " pascal = y.pt "], "--ann") == {"casc": "x.pt", "pascal": "y.pt"}
    with pytest.raises(ValueError, match=message):
        parse_assignments(items, "--ann")


def test_pascal_reports_its_pipeline_latency(tiny_yolo_checkpoint: tuple[Path, Path]) -> None:
    weights, data = tiny_yolo_checkpoint
    rows = benchmark_methods(weights, ["qcfs", "pascal"], data, [2], imgsz=64, max_images=4)
    assert "pipeline_steps" not in rows["methods"]["qcfs"]["snn"]["2"]
    pipeline = rows["methods"]["pascal"]["snn"]["2"]["pipeline_steps"]
    # every neuron layer on the slowest chain costs T + max(T, L) − 1 = 5 steps (L = 4); plus T for the read-out
    assert (pipeline - 2) % 5 == 0 and pipeline > 5 * 10
    assert "| pascal | 2 | 2 | " + str(pipeline) + " |" in format_methods(rows)


def test_parse_settings_types_the_values() -> None:
    settings = parse_settings(["workers=8", "cos_lr=true", "lr0=1e-4", "warmup_epochs=0.5", "optimizer=AdamW"], "--set")
    assert settings == {"workers": 8, "cos_lr": True, "lr0": 1e-4, "warmup_epochs": 0.5, "optimizer": "AdamW"}
    assert type(settings["workers"]) is int and type(settings["lr0"]) is float
