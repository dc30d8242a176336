"""The ``spikedet`` console script: ``spikedet convert|eval|train|finetune|demo|export|synthetic|levels ...``.

Each sub-command is one module with a ``main(argv)`` that parses its arguments and prints; ``tools/*.py`` run
the same functions from a source checkout.
"""
from __future__ import annotations

import importlib
import sys

__all__ = ["COMMANDS", "main"]

# sub-command → (module, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("convert", "convert an ANN into a spiking detector and evaluate it at several T (tools/convert_det.py)"),
    "eval": ("eval", "COCO/VOC mAP of a detector at one or several T with pycocotools (tools/eval_coco.py)"),
    "train": ("train", "train a clip-quantized YOLOv8 or SSD (tools/train_det.py)"),
    "finetune": ("finetune", "spike-aware fine-tuning of an online spiking detector (tools/finetune_snn.py)"),
    "demo": ("demo", "live detection on a camera, video file or stream (tools/demo.py)"),
    "export": ("export", "ONNX export checked with onnxruntime (tools/export_onnx.py)"),
    "synthetic": ("synthetic", "generate the synthetic shapes dataset (tools/make_synthetic.py)"),
    "levels": ("levels", "PASCAL's adaptive per-layer levels of a QCFS detector (tools/adaptive_levels.py)"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "usage: spikedet COMMAND [options]   (spikedet COMMAND --help for its options)\n\ncommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return
    if argv[0] not in COMMANDS:
        print(f"error: unknown command '{argv[0]}'; commands: {', '.join(COMMANDS)} (see spikedet --help)", file=sys.stderr)
        raise SystemExit(2)
    module = importlib.import_module(f"{__name__}.{COMMANDS[argv[0]][0]}")
    module.main(argv[1:])
