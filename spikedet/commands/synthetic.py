"""Generate the synthetic shapes detection set.

    python tools/make_synthetic.py --out DIR --images 800 --size 320 [--seed 0] [--layout coco|voc|both]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path


from spikedet.cli import ToolParser, run_cli
from spikedet.data import read_coco, read_voc
from spikedet.validate import MAX_IMGSZ, check_count, check_output_dir
from spikedet.data.synthetic import (
    DEFAULT_IMAGE_SIZE,
    DEFAULT_NUM_IMAGES,
    DEFAULT_SEED,
    DEFAULT_VAL_FRACTION,
    LAYOUTS,
    generate_synthetic,
)


def main(argv: list[str] | None = None) -> None:
    parser = ToolParser(prog="spikedet synthetic", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="output folder (new, or one made by this tool)")
    parser.add_argument("--images", type=int, default=DEFAULT_NUM_IMAGES, help="number of images, train + val")
    parser.add_argument("--size", type=int, default=DEFAULT_IMAGE_SIZE, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION)
    parser.add_argument("--layout", choices=LAYOUTS, default="coco")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores, at most 8)")
    args = parser.parse_args(argv)

    def job() -> None:
        check_output_dir(args.out)
        check_count(args.images, name="--images")
        check_count(args.size, name="--size")
        if args.size > MAX_IMGSZ:
            raise ValueError(f"--size must be at most {MAX_IMGSZ}, got {args.size}")
        if args.workers is not None:
            check_count(args.workers, name="--workers")
            if args.workers > (os.cpu_count() or 1):  # each worker is a process of its own
                raise ValueError(f"--workers must be at most {os.cpu_count() or 1} (the cores here), got {args.workers}")
        out = generate_synthetic(args.out, args.images, args.size, args.seed, args.val_fraction, args.layout, args.workers)
        read = read_voc if args.layout == "voc" else read_coco
        for split in ("train", "val"):
            print(read(out, split).summary())
        print(f"written to {out.resolve()}")

    run_cli(job)

