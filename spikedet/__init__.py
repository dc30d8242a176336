"""spikedet: turn object detectors into spiking object detectors.

``import spikedet as sd; det = sd.load("x.pt"); snn = det.to_snn("casc"); snn.val(T=(1, 2, 4))`` — see
:mod:`spikedet.api`. The API is imported on first use, so ``import spikedet`` stays light.
"""
from typing import Any

__version__ = "0.1.0"
__all__ = ["Detector", "Detections", "StepMetrics", "ValResults", "load", "methods", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'spikedet' has no attribute {name!r}")
