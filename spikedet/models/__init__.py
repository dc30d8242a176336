"""Detector families with clip-quantized activations, registered in :mod:`.family`."""
from .family import FAMILIES, DetectorFamily, family_for_model, family_of, get_family
from .yolo import build_yolo, check_convertible, quantize_yolo, yolo_analog, yolo_config, yolo_from_config, yolo_readouts

__all__ = [
    "FAMILIES", "DetectorFamily", "family_for_model", "family_of", "get_family",
    "build_yolo", "check_convertible", "quantize_yolo", "yolo_analog", "yolo_config", "yolo_from_config", "yolo_readouts",
]
