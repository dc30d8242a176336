"""Convert a clip-quantized detector into a spiking detector and evaluate it at several T.

With no arguments: the shipped spiking YOLOv8n of the embedded synthetic dataset (fast_snn, fine-tuned at T = 4 then 2),
beside the ANN it came from, at T=1,2,4,8.
"""
from __future__ import annotations

import argparse
from pathlib import Path


from spikedet.cli import ToolParser, parse_assignments, parse_timesteps, run_cli


def main(argv: list[str] | None = None) -> None:
    parser = ToolParser(prog="spikedet convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--weights", default=None,
        help="spikedet ANN checkpoint to convert, or SNN checkpoint (a fine-tuned one) to evaluate as stored beside "
        "its ANN (default: the shipped synthetic model)",
    )
    parser.add_argument("--data", default=None, help="dataset (default: the one the model was trained on)")
    parser.add_argument("--split", default=None, help="evaluation split (default: the dataset's eval split)")
    parser.add_argument("--method", default=None, help="conversion recipe of an ANN checkpoint, see configs/convert/ (default qcfs; with no --weights, naming one converts the shipped ANN)")
    parser.add_argument("--T", default="1,2,4,8", help="time steps, e.g. 4 or 1,2,4,8 (one simulation for all)")
    parser.add_argument("--imgsz", type=int, default=None, help="input size (default: the training size)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-images", type=int, default=None, help="evaluate on the first N images only")
    parser.add_argument(
        "--calib-images", type=int, default=None,
        help="training images for calibrating recipes (dual_phase; default from its YAML)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.NAME=VALUE",
        help="change a recipe knob of its YAML, e.g. calibration.weight_steps=20; repeatable",
    )
    parser.add_argument("--out", default="runs/convert", help="output folder")
    args = parser.parse_args(argv)

    def job() -> None:
        from spikedet.engine.convert import convert_detector, format_table

        results = convert_detector(
            args.weights, data=args.data, method=args.method, timesteps=parse_timesteps(args.T), out=args.out,
            imgsz=args.imgsz, batch=args.batch, split=args.split, max_images=args.max_images,
            calib_images=args.calib_images, recipe_settings=parse_assignments(args.set, "--set", "SECTION.NAME=VALUE"),
        )
        print(format_table(results))
        print(f"results: {Path(args.out) / 'results.json'}  plot: {Path(args.out) / 'map_vs_T.png'}  "
              f"spiking checkpoint: {results['checkpoint']}")

    run_cli(job)

