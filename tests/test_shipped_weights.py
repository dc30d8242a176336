"""Every shipped checkpoint has a model card, loads safely as what it says it is, and names the ANN beside it."""
from __future__ import annotations

from pathlib import Path

import pytest

import spikedet as sd
from spikedet.engine.loading import source_ann

WEIGHTS = sorted((Path(__file__).resolve().parents[1] / "weights").glob("*.pt"))


@pytest.mark.parametrize("path", WEIGHTS, ids=[p.stem for p in WEIGHTS])
def test_shipped_checkpoint_has_a_card_and_loads(path: Path) -> None:
    card = path.with_suffix(".md")
    assert card.is_file() and path.name in card.read_text(encoding="utf-8").splitlines()[0]
    detector = sd.load(path)
    assert detector.kind in ("ann", "snn") and detector.class_names
    if detector.kind == "snn":  # evaluated beside its ANN, which travels with it
        ann = source_ann(detector.config, path)
        assert ann is not None and ann.parent == path.parent and sd.load(ann).class_names == detector.class_names
