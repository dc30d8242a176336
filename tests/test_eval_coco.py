"""COCO evaluation: GT fed back scores 1.0, the class-index → category-id mapping matters, bad input fails clearly."""
import json
from pathlib import Path

import numpy as np
import pytest

from spikedet.data.records import DetectionDataset, ImageRecord
from spikedet.eval import (
    ImageDetections,
    coco_ground_truth,
    evaluate_coco,
    save_coco_results,
    to_coco_results,
)

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
COCO_TINY_VAL = DATASETS / "coco-tiny" / "annotations" / "instances_val2017.json"


def record(image_id, boxes, labels, difficult=None, iscrowd=None):
    n = len(labels)
    return ImageRecord(
        path=f"img/{image_id}.jpg", width=640, height=480, boxes=np.array(boxes, np.float32).reshape(n, 4),
        labels=labels, difficult=difficult or [False] * n, iscrowd=iscrowd or [False] * n, image_id=image_id,
    )


@pytest.fixture
def dataset():
    """3 classes with non-contiguous COCO ids; a crowd box, a difficult box, an image without boxes."""
    records = [
        record(10, [[10, 10, 110, 210], [200, 50, 400, 150], [450, 300, 480, 340]], [0, 1, 2]),
        record(20, [[50, 50, 150, 250], [300, 100, 600, 400], [20, 300, 120, 380]], [0, 0, 1],
               difficult=[False, False, True], iscrowd=[False, True, False]),
        record(30, [[100, 100, 300, 200], [400, 50, 440, 120]], [1, 1]),
        record(40, [], []),
    ]
    return DetectionDataset(name="synthetic", root="", split="val", layout="coco",
                            class_names=["person", "car", "toothbrush"], records=records, category_ids=[1, 3, 90])


def gt_as_detections(ds, skip_crowd=True):
    dets = []
    for r in ds.records:
        keep = ~r.iscrowd if skip_crowd else np.ones(len(r.labels), bool)
        dets.append(ImageDetections(r.image_id, r.boxes[keep], np.ones(int(keep.sum())), r.labels[keep]))
    return dets


def test_ground_truth_dict(dataset):
    gt = coco_ground_truth(dataset)
    assert [c["id"] for c in gt["categories"]] == [1, 3, 90]
    assert [c["name"] for c in gt["categories"]] == ["person", "car", "toothbrush"]
    assert [a["id"] for a in gt["annotations"]] == list(range(1, 9))  # COCOeval needs ids >= 1
    crowd = {a["bbox"][0]: a["iscrowd"] for a in gt["annotations"] if a["image_id"] == 20}
    assert crowd == {50.0: 0, 300.0: 1, 20.0: 1}  # difficult → iscrowd=1
    first = gt["annotations"][0]
    assert first["bbox"] == [10.0, 10.0, 100.0, 200.0] and first["area"] == 20000.0
    assert first["category_id"] == 1 and gt["annotations"][2]["category_id"] == 90


def test_ground_truth_scores_one(dataset, capsys):
    result = evaluate_coco(dataset, gt_as_detections(dataset))
    assert result.map50_95 == 1.0 and result.map50 == 1.0
    assert len(result.stats) == 12 and len(result.lines) == 12
    assert result.lines[0].startswith(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000")
    assert result.to_dict()["map50"] == 1.0 and result.note == ""
    assert capsys.readouterr().out == ""  # pycocotools is silenced


def test_verbose_prints_summary(dataset, capsys):
    evaluate_coco(dataset, gt_as_detections(dataset), verbose=True)
    assert "Average Precision  (AP) @[ IoU=0.50:0.95" in capsys.readouterr().out


def test_detections_on_crowd_and_difficult_are_ignored(dataset):
    assert evaluate_coco(dataset, gt_as_detections(dataset, skip_crowd=False)).map50_95 == 1.0


def test_shifted_box_lowers_map50_95_only(dataset):
    dets = gt_as_detections(dataset)
    dets[0].boxes[2] += np.array([7, 0, 7, 0], np.float32)  # the only toothbrush: IoU 23/37 ≈ 0.62
    result = evaluate_coco(dataset, dets)
    assert result.map50 == 1.0
    # toothbrush is a TP at IoU 0.50, 0.55, 0.60 only: AP 3/10; the two other classes stay at 1.
    assert result.map50_95 == pytest.approx((1 + 1 + 0.3) / 3)


def test_wrong_category_gives_zero(dataset):
    dets = gt_as_detections(dataset)
    for d in dets:
        d.labels = (d.labels + 1) % 3
    result = evaluate_coco(dataset, dets)
    assert result.map50_95 == 0.0 and result.map50 == 0.0


def test_results_use_real_category_ids(dataset, tmp_path):
    dets = gt_as_detections(dataset)
    results = to_coco_results(dets, dataset.category_ids)
    assert {r["category_id"] for r in results} == {1, 3, 90}
    assert results[0] == {"image_id": 10, "category_id": 1, "bbox": [10.0, 10.0, 100.0, 200.0], "score": 1.0}
    path = save_coco_results(dets, dataset.category_ids, tmp_path / "out" / "results.json")
    assert json.loads(path.read_text()) == results


def test_bbox_rounded_to_3_decimals():
    det = ImageDetections(1, [[1.23456, 2.0, 11.0, 12.98765]], [0.5], [0])
    assert to_coco_results([det], [7])[0]["bbox"] == [1.235, 2.0, 9.765, 10.988]


def test_no_detections_gives_zeros_with_note(dataset):
    result = evaluate_coco(dataset, [])
    assert result.map50_95 == 0.0 and result.map50 == 0.0
    assert "no detections" in result.note and len(result.lines) == 12
    empty = evaluate_coco(dataset, [ImageDetections(10, np.zeros((0, 4)), [], [])])
    assert empty.map50_95 == 0.0 and empty.note


def test_label_out_of_range(dataset):
    dets = [ImageDetections(10, [[0, 0, 5, 5]], [0.9], [3])]
    with pytest.raises(ValueError, match="label 3 is out of range for 3 classes"):
        evaluate_coco(dataset, dets)
    with pytest.raises(ValueError, match="label -1 is out of range"):
        to_coco_results([ImageDetections(10, [[0, 0, 5, 5]], [0.9], [-1])], [1, 3, 90])


def test_unknown_image(dataset):
    with pytest.raises(ValueError, match="image id 99, which is not in the dataset"):
        evaluate_coco(dataset, [ImageDetections(99, [[0, 0, 5, 5]], [0.9], [0])])


def test_bad_detection_shapes():
    with pytest.raises(ValueError, match=r"boxes \[N, 4\], scores \[N\], labels \[N\]"):
        ImageDetections(1, [[0, 0, 5, 5]], [0.9, 0.8], [0, 0])
    with pytest.raises(ValueError, match="more than once"):
        to_coco_results([ImageDetections(1, [], [], []), ImageDetections(1, [], [], [])], [1])


def load_coco_json(path: Path) -> DetectionDataset:
    """A DetectionDataset straight from a COCO instances json (independent of spikedet.data.coco)."""
    data = json.loads(path.read_text())
    cat_ids = sorted(c["id"] for c in data["categories"])
    names = {c["id"]: c["name"] for c in data["categories"]}
    index = {cid: i for i, cid in enumerate(cat_ids)}
    anns = {}
    for a in data["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    records = []
    for img in data["images"]:
        group = anns.get(img["id"], [])
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in group)]
        records.append(ImageRecord(
            path=img["file_name"], width=img["width"], height=img["height"], boxes=boxes,
            labels=[index[a["category_id"]] for a in group], difficult=[False] * len(group),
            iscrowd=[bool(a["iscrowd"]) for a in group], image_id=img["id"],
        ))
    return DetectionDataset(name="coco-tiny", root=str(path.parents[1]), split="val2017", layout="coco",
                            class_names=[names[c] for c in cat_ids], records=records, category_ids=cat_ids)


def test_coco_tiny_ground_truth_scores_one():
    if not COCO_TINY_VAL.is_file():
        pytest.skip(f"real data not available: {COCO_TINY_VAL} is missing")
    ds = load_coco_json(COCO_TINY_VAL)
    assert ds.category_ids != list(range(1, ds.num_classes + 1))  # the real, non-contiguous ids
    assert any(r.iscrowd.any() for r in ds.records)
    result = evaluate_coco(ds, gt_as_detections(ds))
    assert result.map50_95 == 1.0 and result.map50 == 1.0
