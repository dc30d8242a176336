"""Warm starts across training activations: a CASC (floor) model initialised from a QCFS (round) one."""
from __future__ import annotations

import pytest
import torch

from spikedet.models.yolo import build_yolo
from spikedet.models.yolo_train import match_rounding

TINY = dict(model="yolov8n", num_classes=3, width=0.0625, depth=0.33)


def _randomise_bn(model: torch.nn.Module) -> None:
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-1.0, 1.0)


def test_casc_model_starts_as_the_qcfs_model_it_was_initialised_from() -> None:
    qcfs = build_yolo(activation="qcfs", levels=4, clip=2.0, **TINY)
    _randomise_bn(qcfs)
    casc = build_yolo(activation="qcfs", levels=4, clip=1.0, learn_clip=False, shift=0.0, clamp_grad=True, **TINY)
    casc.load_state_dict(qcfs.state_dict())
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    qcfs, casc = qcfs.double().eval(), casc.double().eval()
    with torch.no_grad():
        before = (casc(x)[0] - qcfs(x)[0]).abs().max()
        match_rounding(casc, source_shift=0.5)
        after = (casc(x)[0] - qcfs(x)[0]).abs().max()
    assert before > 1e-3  # floor without the correction loses half a level everywhere
    assert after < 1e-9


def test_same_rounding_is_left_alone() -> None:
    model = build_yolo(activation="qcfs", levels=4, **TINY)
    biases = [m.bias.clone() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    match_rounding(model, source_shift=0.5)
    assert all(torch.equal(a, m.bias) for a, m in zip(biases, (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))))


def test_epoch_selection_is_checked(tmp_path) -> None:
    from spikedet.engine.train import train_detector

    with pytest.raises(ValueError, match="select must be 'last' or 'best'"):
        train_detector("synthetic", out=tmp_path, select="final")
