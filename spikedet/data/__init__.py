"""Detection datasets: VOC, COCO and YOLO readers, writers, the synthetic set and the ``load_dataset`` entry point."""
from .coco import read_coco, write_coco_json
from .loader import default_splits, detect_layout, load_dataset
from .records import DatasetError, DetectionDataset, ImageRecord
from .synthetic import CLASS_NAMES, DEFAULT_IMAGE_SIZE, DEFAULT_NUM_IMAGES, DEFAULT_SEED, generate_synthetic
from .voc import read_voc
from .yolo import export_ultralytics, read_yolo

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_NUM_IMAGES",
    "DEFAULT_SEED",
    "DatasetError",
    "DetectionDataset",
    "ImageRecord",
    "default_splits",
    "detect_layout",
    "export_ultralytics",
    "generate_synthetic",
    "load_dataset",
    "read_coco",
    "read_voc",
    "read_yolo",
    "write_coco_json",
]
