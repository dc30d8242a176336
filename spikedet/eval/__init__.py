"""Detection evaluation: COCO mAP (pycocotools), PASCAL VOC mAP, and mAP-vs-timesteps plots."""
from .coco import CocoResult, coco_ground_truth, evaluate_coco, save_coco_results
from .detections import ImageDetections, to_coco_results
from .plots import plot_map_vs_timesteps, plot_methods
from .voc import VocResult, evaluate_voc

__all__ = [
    "CocoResult",
    "ImageDetections",
    "VocResult",
    "coco_ground_truth",
    "evaluate_coco",
    "evaluate_voc",
    "plot_map_vs_timesteps",
    "plot_methods",
    "save_coco_results",
    "to_coco_results",
]
