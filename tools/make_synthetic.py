"""Generate the synthetic shapes detection set.

    python tools/make_synthetic.py --out DIR --images 800 --size 320 [--seed 0] [--layout coco|voc|both]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from spikedet.cli import run_cli  # noqa: E402
from spikedet.data import read_coco, read_voc  # noqa: E402
from spikedet.validate import check_count, check_output_dir  # noqa: E402
from spikedet.data.synthetic import (  # noqa: E402
    DEFAULT_IMAGE_SIZE,
    DEFAULT_NUM_IMAGES,
    DEFAULT_SEED,
    DEFAULT_VAL_FRACTION,
    LAYOUTS,
    generate_synthetic,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
        if args.workers is not None:
            check_count(args.workers, name="--workers")
        out = generate_synthetic(args.out, args.images, args.size, args.seed, args.val_fraction, args.layout, args.workers)
        read = read_voc if args.layout == "voc" else read_coco
        for split in ("train", "val"):
            print(read(out, split).summary())
        print(f"written to {out.resolve()}")

    run_cli(job)


if __name__ == "__main__":
    main()
