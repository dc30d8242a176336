"""spikedet: turn object detectors into spiking object detectors."""
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# Keep in step with spikedet.resources.SHIPPED_IN_WHEEL (setup.py cannot import the package it builds).
SHIPPED_IN_WHEEL = ("configs/convert/*.yaml", "weights/yolov8n_qcfs_l4_synthetic*")


class BuildWithShippedFiles(build_py):
    """Copy the recipe YAMLs and the default model into the built package (spikedet/_shipped), so that a
    wheel, which holds no source tree, converts with no arguments as a checkout does."""

    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        for pattern in SHIPPED_IN_WHEEL:
            for source in sorted(root.glob(pattern)):
                target = Path(self.build_lib) / "spikedet" / "_shipped" / source.relative_to(root)
                self.mkpath(str(target.parent))
                self.copy_file(str(source), str(target), preserve_mode=False)

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
    extras_require={"dev": ["pytest", "pytest-xdist"]},
    entry_points={"console_scripts": ["spikedet = spikedet.commands:main"]},
    cmdclass={"build_py": BuildWithShippedFiles},
)
