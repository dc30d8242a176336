"""spikedet: turn object detectors into spiking object detectors."""
from pathlib import Path

from setuptools import find_packages, setup

# Exact versions live in constraints.txt (the one place they are pinned); here only the names.
REQUIREMENTS = [
    "torch",
    "torchvision",
    "ultralytics",
    "pycocotools",
    "albumentations",
    "onnx",
    "onnxruntime",
    "opencv-python",
    "tqdm",
    "PyYAML",
    "matplotlib",
    "numpy",
]

setup(
    name="spikedet",
    version="0.1.0",
    description="Spiking object detectors (YOLOv8, SSD) by ANN-to-SNN conversion of clip-quantized detectors",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="AGPL-3.0-only",
    python_requires=">=3.11",
    packages=find_packages(include=["spikedet", "spikedet.*"]),
    install_requires=REQUIREMENTS,
    extras_require={"dev": ["pytest"]},
)
