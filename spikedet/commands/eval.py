"""Evaluate a spiking (or ANN) detector with pycocotools at one or several T.

With no --weights/--data: the shipped YOLOv8n-QCFS on the embedded synthetic data, converted with qcfs.
Any dataset layout works: ground truth is written to COCO json with the dataset's real category ids.
"""
from __future__ import annotations

import argparse
from pathlib import Path


from spikedet.cli import ToolParser, parse_timesteps, resolved_precision, run_cli


def main(argv: list[str] | None = None) -> None:
    parser = ToolParser(prog="spikedet eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--T", default="4", help="time steps, e.g. 4 or 1,2,4,8")
    parser.add_argument("--weights", default=None, help="spikedet SNN or ANN checkpoint (default: shipped model)")
    parser.add_argument("--data", default=None, help="dataset (default: the one the model was trained on)")
    parser.add_argument("--split", default=None, help="evaluation split (default: the dataset's eval split)")
    parser.add_argument("--method", default="qcfs", help="recipe used when --weights is an ANN checkpoint")
    parser.add_argument("--imgsz", type=int, default=None)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-images", type=int, default=None, help="evaluate on the first N images only")
    parser.add_argument("--json", default="runs/eval/summary.json", help="summary JSON path (detections beside it)")
    parser.add_argument("--no-ann", action="store_true", help="skip the ANN evaluation of an ANN checkpoint")
    parser.add_argument("--precision", default="fp32",
                        help="auto, fp32 (default), bf16, fp16 or int8: the arithmetic of the layers fed by spikes "
                             "(and, for the ANN, by QCFS levels); membranes and read-outs stay fp32. auto picks a "
                             "faster one only once measured within 0.3 mAP points of fp32: none is yet (BENCHMARKS.md)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N: where the networks run")
    args = parser.parse_args(argv)

    def job() -> None:
        from spikedet.engine.coco_eval import evaluate_checkpoint
        from spikedet.validate import check_device, check_output_file

        check_output_file(args.json, name="--json")
        device = check_device(args.device)
        precision = resolved_precision(args.precision, device=device)
        out = Path(args.json).parent
        summary = evaluate_checkpoint(
            args.weights, args.data, parse_timesteps(args.T), out, args.method, args.split, args.imgsz,
            args.batch, args.max_images, with_ann=not args.no_ann, precision=precision, device=device,
        )
        for name, lines in summary["coco_lines"].items():
            print(f"== {name} ({summary['dataset']}) ==")
            print("\n".join(lines))
        if Path(args.json) != out / "summary.json":
            Path(args.json).write_text((out / "summary.json").read_text())
        print(f"summary: {args.json}  detections: {out}/detections_*.json")

    run_cli(job)

