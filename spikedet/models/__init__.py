"""Detector families with clip-quantized activations (YOLOv8, SSD), registered in :mod:`.family`."""
from .family import FAMILIES, DetectorFamily, family_for_model, family_of, get_family
from .ssd import SSDQCFS, build_ssd, ssd_analog, ssd_config, ssd_from_config, ssd_readouts
from .yolo import build_yolo, check_convertible, quantize_yolo, yolo_analog, yolo_config, yolo_from_config, yolo_readouts

__all__ = [
    "FAMILIES", "DetectorFamily", "family_for_model", "family_of", "get_family",
    "SSDQCFS", "build_ssd", "ssd_analog", "ssd_config", "ssd_from_config", "ssd_readouts",
    "build_yolo", "check_convertible", "quantize_yolo", "yolo_analog", "yolo_config", "yolo_from_config", "yolo_readouts",
]
