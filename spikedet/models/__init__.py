"""Detector families with clip-quantized activations."""
from .yolo import build_yolo, check_convertible, quantize_yolo, yolo_analog, yolo_config, yolo_from_config, yolo_readouts

__all__ = [
    "build_yolo", "check_convertible", "quantize_yolo", "yolo_analog", "yolo_config", "yolo_from_config", "yolo_readouts",
]
