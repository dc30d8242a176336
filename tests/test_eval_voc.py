"""VOC evaluation: protocol details (difficult, duplicates, no +1) and AP values computed by hand."""
import math

import numpy as np
import pytest

from spikedet.data.records import DetectionDataset, ImageRecord
from spikedet.eval import ImageDetections, evaluate_voc
from spikedet.eval.voc import box_iou, voc_ap


def record(image_id, boxes, labels, difficult=None):
    n = len(labels)
    return ImageRecord(path=f"{image_id}.jpg", width=500, height=400, boxes=np.array(boxes, np.float32).reshape(n, 4),
                       labels=labels, difficult=difficult or [False] * n, iscrowd=[False] * n, image_id=image_id)


def make_dataset(records, class_names=("cat", "dog")):
    return DetectionDataset(name="toy", root="", split="test", layout="voc", class_names=list(class_names),
                            records=records)


def det(image_id, *items):
    """ImageDetections from (box, score, label) triples."""
    return ImageDetections(image_id, [b for b, _, _ in items], [s for _, s, _ in items], [c for _, _, c in items])


A, B, C = [0, 0, 100, 100], [200, 0, 300, 100], [0, 200, 100, 300]
FAR = [400, 300, 450, 350]  # overlaps nothing


def test_ground_truth_scores_one_and_empty_class_is_nan():
    ds = make_dataset([record(1, [A, B], [0, 0], difficult=[False, True]), record(2, [C], [1])],
                      class_names=("cat", "dog", "bird"))
    dets = [det(r.image_id, *zip(r.boxes, [1.0] * len(r.labels), r.labels)) for r in ds.records]
    result = evaluate_voc(ds, dets)
    assert result.map50 == 1.0
    assert result.per_class_ap["cat"] == 1.0 and result.per_class_ap["dog"] == 1.0
    assert math.isnan(result.per_class_ap["bird"])  # no ground truth: reported NaN, not in the mean
    assert result.to_dict()["iou_threshold"] == 0.5


def test_difficult_is_neither_tp_nor_fp():
    ds = make_dataset([record(1, [A, B], [0, 0], difficult=[False, True])])
    # Ranked first: as a FP it would halve the AP; and the difficult box is not a missed positive either.
    assert evaluate_voc(ds, [det(1, (B, 0.9, 0), (A, 0.5, 0))]).map50 == 1.0
    assert evaluate_voc(ds, [det(1, (A, 0.5, 0))]).map50 == 1.0


def test_duplicate_is_false_positive():
    ds = make_dataset([record(1, [A, B], [0, 0])])
    # TP, duplicate (FP), TP: recall 1/2, 1/2, 1; precision 1, 1/2, 2/3 → AP = 1/2 * 1 + 1/2 * 2/3.
    result = evaluate_voc(ds, [det(1, (A, 0.9, 0), (A, 0.8, 0), (B, 0.7, 0))])
    assert result.map50 == pytest.approx(5 / 6)
    # Ranked below every TP, the same duplicate costs nothing.
    assert evaluate_voc(ds, [det(1, (A, 0.9, 0), (B, 0.8, 0), (A, 0.7, 0))]).map50 == 1.0


def test_hand_computed_area_and_11_point():
    # 3 positives, detections TP, FP, TP: recall 1/3, 1/3, 2/3; precision 1, 1/2, 2/3.
    ds = make_dataset([record(1, [A], [0]), record(2, [B], [0]), record(3, [C], [0])])
    dets = [det(1, (A, 0.9, 0)), det(2, (FAR, 0.8, 0)), det(3, (C, 0.7, 0))]
    # Area: envelope 1 up to recall 1/3, 2/3 up to 2/3, nothing after → 1/3 + 2/9.
    assert evaluate_voc(ds, dets).map50 == pytest.approx(5 / 9)
    # 11-point: recall >= 0, .1, .2, .3 → 1; >= .4, .5, .6 → 2/3; >= .7 ... 1 → 0.
    result = evaluate_voc(ds, dets, use_07_metric=True)
    assert result.map50 == pytest.approx(6 / 11) and result.use_07_metric


def test_voc_ap_curves():
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == 1.0
    assert voc_ap(np.array([]), np.array([])) == 0.0
    assert voc_ap(np.array([0.5]), np.array([1.0])) == 0.5
    assert voc_ap(np.array([0.5]), np.array([1.0]), use_07_metric=True) == pytest.approx(6 / 11)


def test_iou_is_continuous_and_threshold_strict():
    assert box_iou(np.array(A), np.array([[0, 0, 100, 60]]))[0] == 0.6  # with the devkit's +1 it would be 0.604
    ds = make_dataset([record(1, [A], [0])])
    dets = [det(1, ([0, 0, 100, 60], 0.9, 0))]
    assert evaluate_voc(ds, dets).map50 == 1.0
    assert evaluate_voc(ds, dets, iou_threshold=0.6).map50 == 0.0  # VOC needs IoU > threshold


def test_wrong_class_and_missing_detections():
    ds = make_dataset([record(1, [A], [0]), record(2, [B], [1])])
    result = evaluate_voc(ds, [det(1, (A, 0.9, 1))])
    assert result.per_class_ap == {"cat": 0.0, "dog": 0.0}


def test_errors():
    ds = make_dataset([record(1, [A], [0])])
    with pytest.raises(ValueError, match="label 2 is out of range for 2 classes"):
        evaluate_voc(ds, [det(1, (A, 0.9, 2))])
    with pytest.raises(ValueError, match="image id 7, which is not in the dataset"):
        evaluate_voc(ds, [det(7, (A, 0.9, 0))])
    with pytest.raises(ValueError, match="iou_threshold"):
        evaluate_voc(ds, [], iou_threshold=1.5)
    with pytest.raises(ValueError, match=r"image ids are not unique \(id 1 repeats\)"):
        evaluate_voc(make_dataset([record(1, [A], [0]), record(1, [B], [0])]), [])
