"""COCO bbox mAP with pycocotools, fully in memory (no json files written or read)."""
from __future__ import annotations

import contextlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..data.records import DetectionDataset
from .detections import ImageDetections, check_detections, to_coco_results, xyxy_to_xywh

__all__ = ["CocoResult", "coco_ground_truth", "evaluate_coco", "save_coco_results"]


@dataclass
class CocoResult:
    """COCOeval's 12 summary numbers and the lines ``summarize()`` prints.

    Following COCOeval, a metric is ``-1`` where it is undefined (no ground truth in that area range).
    ``note`` explains a result that did not come from a normal run (e.g. no detections at all).
    """

    map50_95: float
    map50: float
    stats: list[float]
    lines: list[str]
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def coco_ground_truth(dataset: DetectionDataset) -> dict:
    """The dataset as a COCO instances dict, ready for ``COCO()``.

    Difficult boxes are written with ``iscrowd=1`` so COCOeval ignores them (a detection on one is neither
    TP nor FP), as it ignores crowd regions. ``area`` is the box area ``w * h``, the same measure COCOeval
    uses for detections, so both fall in the same small/medium/large range.
    """
    images, annotations = [], []
    for record in dataset.records:
        images.append(
            {"id": record.image_id, "width": record.width, "height": record.height, "file_name": Path(record.path).name}
        )
        ignore = record.iscrowd | record.difficult
        for bbox, label, crowd in zip(xyxy_to_xywh(record.boxes).tolist(), record.labels.tolist(), ignore.tolist()):
            annotations.append(
                {
                    # COCOeval treats a matched-gt id of 0 as "unmatched", so ids must start at 1.
                    "id": len(annotations) + 1,
                    "image_id": record.image_id,
                    "category_id": int(dataset.category_ids[label]),
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": int(crowd),
                }
            )
    categories = [{"id": int(cid), "name": name} for cid, name in zip(dataset.category_ids, dataset.class_names)]
    return {"info": {"description": f"{dataset.name}/{dataset.split}"}, "images": images,
            "annotations": annotations, "categories": categories}


def _coco_from_dict(data: dict) -> COCO:
    coco = COCO()
    coco.dataset = data
    coco.createIndex()
    return coco


def evaluate_coco(
    dataset: DetectionDataset, dets: list[ImageDetections], max_dets: int = 100, verbose: bool = False
) -> CocoResult:
    """COCO bbox evaluation (AP@[.50:.95], AP50, ...) of ``dets`` against ``dataset``.

    Every image of the dataset is evaluated, with or without detections. ``max_dets`` is COCOeval's largest
    ``maxDets`` (the one mAP uses); COCOeval applies it per image *and category*. pycocotools' own progress
    output is shown only when ``verbose``.
    """
    if not dataset.records:
        raise ValueError(f"{dataset.name}/{dataset.split}: cannot evaluate a dataset with no images")
    if max_dets < 1:
        raise ValueError(f"max_dets must be >= 1, got {max_dets}")
    check_detections(dets, dataset.num_classes, [r.image_id for r in dataset.records])
    results = to_coco_results(dets, dataset.category_ids)

    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        coco_gt = _coco_from_dict(coco_ground_truth(dataset))
        note = ""
        if results:
            coco_dt = coco_gt.loadRes(results)
        else:
            # loadRes indexes results[0] and crashes on an empty list; an empty result set gives COCOeval's
            # honest answer instead: 0 wherever there is ground truth.
            note = "no detections: every AP/AR is 0 (-1 where there is no ground truth)"
            coco_dt = _coco_from_dict({"images": coco_gt.dataset["images"], "annotations": [],
                                       "categories": coco_gt.dataset["categories"]})
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.params.maxDets = [1, 10, max_dets]
        evaluator.evaluate()
        evaluator.accumulate()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        evaluator.summarize()
    lines = [line for line in summary.getvalue().splitlines() if line.startswith(" Average")]
    if verbose:
        print("\n".join(lines))
    stats = [float(s) for s in evaluator.stats]
    return CocoResult(map50_95=stats[0], map50=stats[1], stats=stats, lines=lines, note=note)


def save_coco_results(dets: list[ImageDetections], category_ids: list[int], path: str | Path) -> Path:
    """Write ``dets`` as a COCO result json (the format the COCO evaluation server takes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_coco_results(dets, category_ids)))
    return path
