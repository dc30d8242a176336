"""The Python API (spikedet.api): the same numbers as the tools, typed results, keyword-only settings."""
from __future__ import annotations

from pathlib import Path

import pytest

import spikedet as sd
from spikedet.engine.convert import convert_detector


def test_methods_lists_the_recipes() -> None:
    assert {"qcfs", "cos", "casc", "dual_phase", "fast_snn", "pascal"} <= set(sd.methods())


def test_convert_validate_save_and_reload(tiny_yolo_checkpoint, tmp_path: Path) -> None:
    weights, data = tiny_yolo_checkpoint
    det = sd.load(weights)
    assert det.kind == "ann" and det.class_names
    snn = det.to_snn("qcfs")
    res = snn.val(data=data, T=(1, 2))
    # the API and convert_det.py agree exactly
    tool = convert_detector(weights, data=data, method="qcfs", timesteps=[1, 2], out=tmp_path / "tool", batch=8)
    assert res[2].map50_95 == tool["snn"]["2"]["map50_95"] and res.ann.map50_95 == tool["ann"]["map50_95"]
    assert res[2].steps_total == 2 and res[2].energy_mj > 0
    assert "SNN qcfs" in res.table() and res.plot(tmp_path / "p.png").is_file()
    again = sd.load(snn.save(tmp_path / "snn.pt"))
    assert again.kind == "snn" and again.val(data=data, T=2)[2].map50_95 == res[2].map50_95


def test_predict_one_image(tiny_yolo_checkpoint) -> None:
    from spikedet.data import load_dataset

    weights, data = tiny_yolo_checkpoint
    image = load_dataset(data, "val").records[0].path
    dets = sd.load(weights).to_snn("qcfs").predict(image, T=2, conf=0.0)
    assert len(dets) == len(dets.names) == len(dets.boxes) and all(n in sd.load(weights).class_names for n in dets.names)
    with pytest.raises(Exception, match="cannot read image"):
        sd.load(weights).predict("missing.jpg")


def test_recipe_settings_by_name(tiny_yolo_checkpoint) -> None:
    weights, _ = tiny_yolo_checkpoint
    det = sd.load(weights)
    assert det.to_snn("cos", rho=2).config["recipe"]["schedule"]["rho"] == 2
    with pytest.raises(ValueError, match="has no setting 'weight_step'"):
        det.to_snn("dual_phase", weight_step=3)
    with pytest.raises(ValueError, match="already spiking"):
        det.to_snn("qcfs").to_snn("casc")
