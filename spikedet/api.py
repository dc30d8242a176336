"""The Python API: one object for a detector, ANN or spiking, in the style of ultralytics' ``YOLO("x.pt")``.

>>> import spikedet as sd
>>> det = sd.train("../shared/datasets/bccd", init="yolov8n.pt", epochs=30)  # or, from a checkpoint:
>>> det = sd.load("weights/yolov8n_qcfs_l4_bccd.pt")          # ANN or SNN checkpoint, any family
>>> snn = det.to_snn("casc")                                   # or ("dual_phase", data=..., weight_steps=20)
>>> dets = snn.predict("image.jpg", T=4)                       # boxes, scores, labels, class names
>>> res = snn.val(data="../shared/datasets/bccd", T=(1, 2, 4, 8))
>>> res[4].map50_95, res[4].energy_mj, res.table(), res.plot("map_vs_T.png")
>>> snn.save("snn.pt"); snn.export("snn.onnx", T=4); sd.methods()

Every method is a thin layer over the engine the command-line tools use, so both give the same numbers.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from .checkpoint import save_checkpoint
from .data.image_check import check_image
from .data.records import DatasetError, ImageRecord
from .engine.evaluate import eval_dataset, evaluate_ann, evaluate_snn
from .engine.inference import letterbox, to_tensor
from .engine.loading import LoadedAnn, load_model
from .engine.recipe_run import build_snn
from .eval.plots import plot_map_vs_timesteps
from .models.family import family_of
from .recipes import Recipe, available_recipes, get_recipe, override_recipe
from .spiking.hardware import resolve_precision
from .spiking.runtime import SpikingNetwork, check_timesteps
from .validate import check_device

__all__ = ["Detector", "Detections", "StepMetrics", "ValResults", "load", "methods", "train"]


def methods() -> list[str]:
    """The conversion recipes ``to_snn`` takes (``configs/convert/*.yaml``)."""
    return available_recipes()


@dataclass(frozen=True)
class Detections:
    """One image's detections: ``boxes`` ``xyxy`` in image pixels, ``scores``, ``labels`` and their ``names``."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class StepMetrics:
    """pycocotools mAP (fractions), steps really simulated, firing rate, synaptic operations and energy (mJ)."""

    map50_95: float
    map50: float
    steps_total: int | None = None
    firing_rate: float | None = None
    sops: float | None = None
    energy_mj: float | None = None


@dataclass
class ValResults:
    """``res[T]`` → :class:`StepMetrics` of the spiking detector; ``res.ann`` the ANN's (an ANN's own ``val``)."""

    dataset: str
    method: str
    steps: dict[int, StepMetrics] = field(default_factory=dict)
    ann: StepMetrics | None = None
    precision: str = "fp32"

    def __getitem__(self, timesteps: int) -> StepMetrics:
        return self.steps[timesteps]

    def as_dict(self) -> dict[str, Any]:
        """The ``results.json`` layout of ``tools/convert_det.py``."""
        return {
            "dataset": self.dataset, "method": self.method,
            "ann": vars(self.ann) if self.ann else None, "snn": {str(t): vars(m) for t, m in self.steps.items()},
        }

    def table(self) -> str:
        rows = [f"{'model':<16} {'T':>3} {'steps':>5} {'mAP50-95':>9} {'mAP50':>7} {'energy mJ':>9}"]
        if self.ann:
            rows.append(f"{'ANN':<16} {'-':>3} {'-':>5} {self.ann.map50_95:>9.4f} {self.ann.map50:>7.4f} {'-':>9}")
        for t, m in self.steps.items():
            rows.append(f"{'SNN ' + self.method:<16} {t:>3} {m.steps_total:>5} {m.map50_95:>9.4f} {m.map50:>7.4f} {m.energy_mj:>9.4f}")
        return "\n".join(rows)

    def plot(self, path: str | Path) -> Path:
        """mAP vs T with the ANN as reference (needs the ANN: ``val`` of a converted or loaded-with-ANN detector)."""
        if self.ann is None:
            raise ValueError("plot needs the ANN's mAP: validate a detector that knows its ANN")
        return plot_map_vs_timesteps(self.as_dict(), path)


def _metrics(raw: dict[str, Any]) -> StepMetrics:
    keys = ("map50_95", "map50", "steps_total", "firing_rate", "sops", "energy_mj")
    return StepMetrics(**{k: raw[k] for k in keys if k in raw})


class Detector:
    """A loaded detector: an ANN (``kind == "ann"``, a QCFS or SiLU model) or a spiking network (``"snn"``)."""

    def __init__(self, model: nn.Module | SpikingNetwork, config: dict[str, Any], *, kind: str, ann: nn.Module | None = None) -> None:
        self.model, self.config, self.kind = model, config, kind
        self._ann = ann  # the ANN a spiking detector came from, when known (its val() reports it alongside)

    @property
    def class_names(self) -> list[str]:
        return list(self.config.get("class_names") or [])

    @property
    def imgsz(self) -> int:
        return int(self.config.get("imgsz", 320))

    def __repr__(self) -> str:
        recipe = f", recipe={self.config['recipe']['name']}" if self.kind == "snn" else ""
        return f"Detector(kind={self.kind}, family={self.config.get('family', 'yolo')}{recipe}, classes={self.class_names})"

    def to_snn(
        self, method: str = "qcfs", *, data: str | Path | None = None, T: int = 4, calib_images: int | None = None,
        **settings: Any,
    ) -> "Detector":
        """Convert with a recipe (:func:`methods`). A calibrating recipe (dual_phase, fast_snn_ft) calibrates for
        ``T`` on ``calib_images`` training images of ``data``; ``settings`` change its YAML knobs by name
        (``weight_steps=20``, ``rho=2``)."""
        if self.kind != "ann":
            raise ValueError("this detector is already spiking; to_snn converts ANN checkpoints")
        recipe = override_recipe(get_recipe(method), _recipe_settings(get_recipe(method), settings))
        network = build_snn(self.model, recipe)
        if recipe.calibration:
            _calibrate(network, self.model, recipe, data or self.config.get("dataset") or "synthetic", T, calib_images,
                       self.config, self.imgsz)
        config = dict(self.config, recipe=recipe.to_dict())
        return Detector(network, config, kind="snn", ann=self.model)

    def _forward(self, T: int) -> Any:
        if self.kind == "ann":
            return lambda x: self.model(x)
        check_timesteps(T)
        return lambda x: self.model(x, T)

    @torch.no_grad()
    def predict(self, source: str | Path | np.ndarray, *, T: int = 4, conf: float = 0.25, imgsz: int | None = None) -> Detections:
        """Detections on one image (a path, or a BGR array as OpenCV reads it); ``T`` steps for a spiking one."""
        if isinstance(source, (str, Path)):
            problem = check_image(source)[1] if Path(source).is_file() else "missing"
            if problem is not None:
                raise DatasetError(f"cannot read image {source}: {problem}")
        image = cv2.imread(str(source)) if isinstance(source, (str, Path)) else source
        if image is None or not isinstance(image, np.ndarray) or image.ndim != 3:
            raise DatasetError(f"cannot read image {source!r}" if isinstance(source, (str, Path)) else "expected an HxWx3 BGR array")
        size = imgsz or self.imgsz
        record = ImageRecord(path=str(source), width=image.shape[1], height=image.shape[0], boxes=np.zeros((0, 4), np.float32),
                             labels=np.zeros(0, np.int64), difficult=np.zeros(0, bool), iscrowd=np.zeros(0, bool), image_id=0)
        batch = to_tensor([letterbox(image[..., ::-1], size)])
        (dets,) = family_of(self.model).postprocess(self._forward(T)(batch), size, [record], conf=conf)
        return Detections(boxes=dets.boxes, scores=dets.scores, labels=dets.labels,
                          names=[self.class_names[i] for i in dets.labels])

    def val(
        self, *, data: str | Path | None = None, T: int | tuple[int, ...] = (1, 2, 4, 8), split: str | None = None,
        max_images: int | None = None, batch: int = 8, imgsz: int | None = None, precision: str = "fp32",
        device: str = "cpu",
    ) -> ValResults:
        """pycocotools mAP on ``data``'s evaluation split (default: the data the model was trained on); a
        spiking detector at every ``T`` from one simulation where its neurons allow, beside its ANN if known.
        ``precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``, ``int8``) applies to both; ``auto`` is resolved
        against ``device`` (``cpu``, ``cuda``, ``cuda:N``: where the networks run; the model moves there) and the
        result's ``precision`` says what ran."""
        device = check_device(device, name="device")
        precision = resolve_precision(precision, device=device, name="precision")[0]
        dataset, spec = eval_dataset(self.config, data, split, max_images)
        size = imgsz or self.imgsz
        if self.kind == "ann":
            metrics, _ = evaluate_ann(self.model, dataset, size, batch, precision=precision, device=device)
            return ValResults(dataset=f"{spec}:{dataset.split}", method="ann", ann=_metrics(metrics), precision=precision)
        timesteps = sorted(set(check_timesteps([T] if isinstance(T, int) else list(T))))
        snn, _, _ = evaluate_snn(self.model, dataset, timesteps, size, batch, precision=precision, device=device)
        ann = None
        if self._ann is not None:
            ann = _metrics(evaluate_ann(self._ann, dataset, size, batch, precision=precision, device=device)[0])
        return ValResults(dataset=f"{spec}:{dataset.split}", method=self.config["recipe"]["name"], ann=ann,
                          steps={t: _metrics(m) for t, m in snn.items()}, precision=precision)

    def save(self, path: str | Path) -> Path:
        """A spikedet checkpoint (safe to load: tensors and JSON only) that :func:`load` and every tool take."""
        module = self.model.net if self.kind == "snn" else self.model
        return save_checkpoint(path, module, self.kind, self.config)

    def export(self, path: str | Path, *, T: int = 4, stateful: bool = False, images: int = 4) -> dict[str, Any]:
        """ONNX export (opset 17) checked against PyTorch in onnxruntime; returns the export report."""
        from .deploy.onnx_export import export_detector  # onnx / onnxruntime only when exporting

        with tempfile.TemporaryDirectory() as folder:
            checkpoint = self.save(Path(folder) / "model.pt")
            return export_detector(checkpoint, out=path, timesteps=T, imgsz=self.imgsz, stateful=stateful, images=images)


def _recipe_settings(recipe: Recipe, settings: dict[str, Any]) -> dict[str, str]:
    """``weight_steps=20`` → ``{"calibration.weight_steps": "20"}``: the section that holds the knob."""
    spec, out = recipe.to_dict(), {}
    for name, value in settings.items():
        sections = [s for s in ("neuron_args", "calibration", "schedule") if spec[s] and name in spec[s]]
        if not sections:
            raise ValueError(f"recipe '{recipe.name}' has no setting '{name}'")
        out[f"{sections[0]}.{name}"] = str(value)
    return out


def _calibrate(network: SpikingNetwork, ann: nn.Module, recipe: Recipe, data: str | Path, T: int,
               calib_images: int | None, config: dict[str, Any], imgsz: int) -> None:
    from .engine.recipe_run import calibration_images
    from .spiking.calibrate import calibrate_with_recipe, calibration_settings

    count = calib_images or int(calibration_settings(recipe.calibration).get("images", 32))
    images = calibration_images(data, count, imgsz, config["class_names"])
    calibrate_with_recipe(network, ann, images, T, calibration=recipe.calibration)


def train(
    data: str | Path, *, out: str | Path = "runs/train", model: str = "yolov8n", init: str | Path | None = None,
    activation: str = "qcfs", levels: int | list[int] | str = 4, epochs: int = 30, imgsz: int = 320, batch: int = 16,
    device: str = "cpu", extra: dict[str, Any] | None = None,
) -> Detector:
    """Train a clip-quantized detector (``tools/train_det.py``) and load it. ``init`` takes a spikedet ANN
    checkpoint or an ultralytics one (``yolov8n.pt``, a run's ``best.pt``), read without running pickle code."""
    from .engine.train import train_detector  # ultralytics' trainer, imported when training

    checkpoint = train_detector(data, out=out, model=model, activation=activation, levels=levels, epochs=epochs,
                                imgsz=imgsz, batch=batch, device=device, init=init, extra=extra)
    return load(checkpoint)


def load(path: str | Path) -> Detector:
    """A spikedet checkpoint, ANN or spiking, of any detector family. A spiking checkpoint that names the ANN it
    came from (and finds it) reports that ANN in ``val``."""
    loaded = load_model(path)
    if isinstance(loaded, LoadedAnn):
        return Detector(loaded.model, loaded.config, kind="ann")
    ann_path = loaded.ann_path
    ann = load_model(ann_path, expect="ann").model if ann_path else None
    return Detector(loaded.network, loaded.config, kind="snn", ann=ann)
