"""Low-precision spiking inference against fp32, side by side: accuracy, evaluation throughput, demo latency.

Every precision the hardware runs (:mod:`~spikedet.spiking.hardware`) is applied to the SNN and to the ANN it
came from (:func:`~spikedet.spiking.precision.to_precision`), and all of them run in one loop over the evaluation
images: each batch goes through every model in turn, so load changes on a shared machine hit all alike.
Per precision: mAP50-95 at every T from one anytime simulation, the images per second of that simulation plus its
NMS (data loading excluded, shared), the same for the ANN, and the demo's per-frame work (letterbox, network at
T, NMS) in milliseconds, the median of repeated frames timed in turns.

A control row, ``fp32 reordered``, runs fp32 with channels-last convolutions: the same arithmetic summed in another
order. Its distance from fp32 is how much mAP moves when float32 rounding alone flips the spikes that sit on a
threshold, the floor under which a low precision's difference is noise rather than its own error. That floor is
low: reordering flips almost no spike. With int8 measured, rows ``fp32 noise k`` add the control of int8's size:
fp32 whose weights carry random errors as large as int8's rounding (:func:`~spikedet.spiking.divergence.int8_sized_noise`);
how far their mAP strays from fp32 is what a perturbation of that size does by chance.

Per precision, :func:`~spikedet.spiking.divergence.quantizer_divergence` against fp32 on the first evaluation
images says how many spikes (and ANN levels) it changes, layer by layer: where the rounding starts to show and
how far it spreads through the network.
"""
from __future__ import annotations

import copy
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import torch
from torch import nn

from ..engine.evaluate import eval_dataset
from ..engine.inference import image_batches
from ..engine.loading import LoadedAnn, load_model
from ..eval.coco import evaluate_coco
from ..eval.detections import ImageDetections
from ..models.family import family_of
from ..models.postprocess import scaled_nms
from ..recipes import Recipe, get_recipe
from ..spiking.bench import time_ms
from ..spiking.convert import fold_batchnorm
from ..spiking.divergence import int8_sized_noise, quantizer_divergence
from ..spiking.hardware import (
    CPU_BF16_FLAGS,
    CPU_FP16_FLAGS,
    cpu_flags,
    resolve_precision,
)
from ..spiking.precision import CONCRETE_PRECISIONS, to_precision
from ..spiking.runtime import SpikingNetwork, check_timesteps
from ..validate import check_count, check_imgsz
from .demo import frame_input
from .detector import AnnDetector, SpikingDetector, comparison_ann, spiking_network

__all__ = ["bench_precision", "format_precision_bench"]


def _models(weights: str | Path, method: str) -> tuple[SpikingNetwork, nn.Module | None, dict, Recipe]:
    """``(network, BN-folded ANN or None, config, recipe)`` of an ANN or SNN checkpoint, loaded as the demo
    loads them (an ANN converted with ``method``, which must need no calibration data)."""
    loaded = load_model(weights)
    if isinstance(loaded, LoadedAnn):
        return spiking_network(loaded, method=method), fold_batchnorm(loaded.model), loaded.config, get_recipe(method)
    ann = comparison_ann(loaded.ann_path).model if loaded.ann_path else None
    return loaded.network, ann, loaded.config, loaded.recipe


CONTROL = "fp32 reordered"


def _reordered(model: nn.Module) -> nn.Module:
    """A copy whose convolutions run channels-last: fp32, summed in another order."""
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
    return model


def _supported(precisions: list[str]) -> tuple[list[str], dict[str, str]]:
    """The precisions that run here, and why each other one does not."""
    ok, refused = [], {}
    for name in precisions:
        if name not in CONCRETE_PRECISIONS:
            raise ValueError(f"--precisions takes {', '.join(CONCRETE_PRECISIONS)}, got {name!r}")
        try:
            ok.append(resolve_precision(name)[0])
        except ValueError as err:
            refused[name] = str(err).removeprefix("--precision ")
    return ok, refused


DIVERGENCE_IMAGES = 2


def _divergence(reference: nn.Module, other: nn.Module, images: torch.Tensor, timesteps: int) -> list[dict]:
    return [asdict(layer) for layer in quantizer_divergence(reference, other, images, timesteps=timesteps)]


def _divergence_line(name: str, kind: str, layers: list[dict], timesteps: int) -> str:
    flipped = [layer["flipped"] for layer in layers]
    what = f"spikes at T={timesteps}" if kind == "SNN" else "QCFS levels"
    mean = f"mean {100 * sum(flipped) / len(flipped):.2f} % over {len(flipped)} quantizer layers"
    first = next((i for i, f in enumerate(flipped) if f > 0), None)
    if first is None:
        return f"{name} {kind}: {what} identical to fp32's in all {len(flipped)} quantizer layers"
    return (f"{name} {kind}: {what} differing from fp32: {100 * flipped[first]:.4f} % in layer {first + 1} (the "
            f"first that differs), {100 * flipped[len(flipped) // 2]:.3f} % midway, {100 * flipped[-1]:.2f} % in the "
            f"last; {mean}")


def bench_precision(
    weights: str | Path,
    *,
    data: str | Path | None = None,
    method: str = "qcfs",
    precisions: list[str] = CONCRETE_PRECISIONS,
    timesteps: list[int] = (1, 2, 4, 8),
    imgsz: int | None = None,
    batch: int = 8,
    max_images: int | None = None,
    threads: int = 2,
    demo_timesteps: int = 4,
    demo_imgsz: int = 320,
    repeats: int = 15,
    control: bool = True,
    noise_controls: int = 2,
) -> dict[str, Any]:
    """Measure every supported precision of ``precisions`` on the model in ``weights`` (an ANN checkpoint is
    converted with ``method``; an SNN checkpoint compares with the ANN it names, when that is found). The
    returned dict is JSON-ready; see :func:`format_precision_bench`. ``control`` adds the ``fp32 reordered`` row
    and, when int8 is measured, ``noise_controls`` rows ``fp32 noise k``: fp32 with weight errors the size of
    int8's rounding, drawn from seed k (see the module docstring)."""
    timesteps = sorted(set(check_timesteps(list(timesteps))))
    check_imgsz(imgsz)
    check_imgsz(demo_imgsz, name="--demo-imgsz")
    for value, name in ((batch, "--batch"), (threads, "--threads"), (repeats, "--repeats"), (demo_timesteps, "--demo-T")):
        check_count(value, name=name)
    check_count(max_images, name="--max-images", optional=True)
    check_count(noise_controls, name="--noise-controls", minimum=0)
    names, refused = _supported(list(precisions))
    torch.set_num_threads(threads)
    network, ann, config, recipe = _models(weights, method)
    if network.restarting_neurons():
        raise ValueError(f"recipe '{recipe.name}' simulates each T on its own: this benchmark times anytime simulations")
    dataset, data = eval_dataset(config, data, None, max_images)
    imgsz = imgsz or config.get("imgsz", 320)
    postprocess = family_of(network).postprocess
    flags = cpu_flags()
    result: dict[str, Any] = {
        "weights": str(weights), "dataset": f"{data}:{dataset.split}", "images": len(dataset), "method": recipe.name,
        "imgsz": imgsz, "timesteps": timesteps, "batch": batch, "threads": threads, "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(), "cuda": torch.cuda.is_available(),
        "cpu_low_precision_flags": sorted(flags & (CPU_BF16_FLAGS | CPU_FP16_FLAGS | {"avx512_vnni", "amx_int8"})),
        "auto": resolve_precision("auto"), "refused": refused, "precisions": {}, "divergence_images": DIVERGENCE_IMAGES,
    }
    models: dict[str, dict[str, Any]] = {}
    if control:
        models[CONTROL] = {"snn": _reordered(network), "ann": _reordered(ann) if ann is not None else None}
        result["precisions"][CONTROL] = {"snn_layers": None, "ann_layers": None}
        for seed in range(1, noise_controls + 1) if "int8" in names else ():
            noisy_ann = int8_sized_noise(ann, seed=seed, readouts=family_of(ann).readouts(ann)) if ann is not None else None
            models[f"fp32 noise {seed}"] = {"snn": int8_sized_noise(network, seed=seed), "ann": noisy_ann}
            result["precisions"][f"fp32 noise {seed}"] = {"snn_layers": None, "ann_layers": None}
    for name in names:
        snn, snn_report = to_precision(network, name)
        lowered_ann, ann_report = (None, None)
        if ann is not None:
            lowered_ann, ann_report = to_precision(ann, name, readouts=family_of(ann).readouts(ann))
        models[name] = {"snn": snn, "ann": lowered_ann}
        result["precisions"][name] = {
            "snn_layers": snn_report.to_dict() | {"summary": snn_report.summary()},
            "ann_layers": ann_report.to_dict() | {"summary": ann_report.summary()} if ann_report else None,
        }

    # accuracy and evaluation throughput: every batch through every model in turn
    dets: dict[tuple[str, Any], list[ImageDetections]] = {}
    seconds: dict[tuple[str, str], float] = {}
    with torch.inference_mode():
        for images, records in image_batches(dataset.records, imgsz, batch):
            for name, pair in models.items():
                start = time.perf_counter()
                outputs = pair["snn"].anytime(images, timesteps)
                for t, output in outputs.items():
                    dets.setdefault((name, t), []).extend(postprocess(output, imgsz, records))
                seconds[name, "snn"] = seconds.get((name, "snn"), 0.0) + time.perf_counter() - start
                if pair["ann"] is not None:
                    start = time.perf_counter()
                    dets.setdefault((name, "ann"), []).extend(postprocess(pair["ann"](images), imgsz, records))
                    seconds[name, "ann"] = seconds.get((name, "ann"), 0.0) + time.perf_counter() - start
    for name, row in result["precisions"].items():
        row["snn"] = {str(t): evaluate_coco(dataset, dets[name, t]).map50_95 for t in timesteps}
        row["snn_images_per_s"] = len(dataset) / seconds[name, "snn"]
        if (name, "ann") in dets:
            row["ann"] = evaluate_coco(dataset, dets[name, "ann"]).map50_95
            row["ann_images_per_s"] = len(dataset) / seconds[name, "ann"]

    # where each precision's quantizer outputs part from fp32's, layer by layer: why its mAP moves
    probe = next(iter(image_batches(dataset.records[:DIVERGENCE_IMAGES], imgsz, DIVERGENCE_IMAGES)))[0]
    if "fp32" in models:
        reference = models["fp32"]
        for name, pair in models.items():
            if name == "fp32":
                continue
            row = result["precisions"][name]
            row["snn_divergence"] = _divergence(reference["snn"], pair["snn"], probe, demo_timesteps)
            if pair["ann"] is not None:
                row["ann_divergence"] = _divergence(reference["ann"], pair["ann"], probe, demo_timesteps)

    # the demo's per-frame work on one evaluation image, every detector timed in turns
    frame = cv2.imread(dataset.records[0].path, cv2.IMREAD_COLOR)
    detectors = [(name, "snn", SpikingDetector(pair["snn"], demo_timesteps)) for name, pair in models.items()]
    detectors += [(name, "ann", AnnDetector(pair["ann"])) for name, pair in models.items() if pair["ann"] is not None]

    def step(detector: Any) -> None:
        scaled_nms(detector(frame_input(frame, demo_imgsz)), demo_imgsz, [frame.shape[:2]], 0.25)

    with torch.inference_mode():
        times = time_ms(*[lambda d=d: step(d) for _, _, d in detectors], warmup=3, repeats=repeats)
    for (name, kind, _), timing in zip(detectors, times):
        result["precisions"][name][f"demo_{kind}_ms"] = timing["median"]
    result["demo"] = {"timesteps": demo_timesteps, "imgsz": demo_imgsz, "repeats": repeats}
    return result


def format_precision_bench(result: dict[str, Any]) -> str:
    """The table: per precision, mAP50-95 (points) at every T and of the ANN, evaluation images/s, demo ms/frame;
    then what runs in low precision and the precisions refused here."""
    ts = result["timesteps"]
    demo = result["demo"]
    auto, note = result["auto"]
    lines = [
        f"{result['dataset']} ({result['images']} images, {result['imgsz']} px), {result['method']}, "
        f"{result['threads']} threads, torch {result['torch']}, {result['cpu']}; CPU low-precision flags: "
        f"{', '.join(result['cpu_low_precision_flags']) or 'none'}; " + (note or f"auto: {auto}"),
        f"{'precision':<14} " + " ".join(f"{'T=' + str(t):>6}" for t in ts) + f" {'ANN':>6} "
        f"{'SNN img/s':>9} {'ANN img/s':>9} {'demo SNN T=' + str(demo['timesteps']) + ' ms':>17} {'demo ANN ms':>11}",
    ]
    for name, row in result["precisions"].items():
        ann = f"{100 * row['ann']:>6.2f}" if "ann" in row else f"{'-':>6}"
        ann_speed = f"{row['ann_images_per_s']:>9.2f}" if "ann" in row else f"{'-':>9}"
        ann_demo = f"{row['demo_ann_ms']:>11.1f}" if "demo_ann_ms" in row else f"{'-':>11}"
        lines.append(
            f"{name:<14} " + " ".join(f"{100 * row['snn'][str(t)]:>6.2f}" for t in ts) + f" {ann} "
            f"{row['snn_images_per_s']:>9.2f} {ann_speed} {row['demo_snn_ms']:>17.1f} {ann_demo}"
        )
    lines.append(f"(mAP50-95 in points; images/s of the anytime T={','.join(map(str, ts))} simulation + NMS, batch "
                 f"{result['batch']}; demo: letterbox + network + NMS at {demo['imgsz']} px, median of {demo['repeats']})")
    for name, row in result["precisions"].items():
        if row["snn_layers"] and name != "fp32":
            lines.append(f"SNN {row['snn_layers']['summary']}")
            if row["ann_layers"]:
                lines.append(f"ANN {row['ann_layers']['summary']}")
    images = result.get("divergence_images", DIVERGENCE_IMAGES)
    for name, row in result["precisions"].items():
        for kind in ("SNN", "ANN"):
            if f"{kind.lower()}_divergence" in row:
                lines.append(_divergence_line(name, kind, row[f"{kind.lower()}_divergence"], demo["timesteps"]))
    if any("snn_divergence" in row for row in result["precisions"].values()):
        lines.append(f"(divergence: on the first {images} evaluation images, every quantizer layer in forward order)")
    lines += [f"{name} refused here: {why}" for name, why in result["refused"].items()]
    return "\n".join(lines)
