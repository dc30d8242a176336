"""Time the synthetic generator and check it is deterministic.

Generates the same set twice (default 1,000 images at 320 px) into temporary folders, then prints seconds,
images/s and the sha256 of each run's annotation json, and writes the numbers as JSON.

    python tools/bench_synthetic.py [--images 1000] [--size 320] [--out outputs/bench_synthetic.json]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from spikedet.data.synthetic import GENERATOR_VERSION, generate_synthetic  # noqa: E402


def _json_digest(root: Path) -> str:
    """sha256 over both annotation files, in a fixed order."""
    h = hashlib.sha256()
    for split in ("train", "val"):
        h.update((root / "annotations" / f"instances_{split}.json").read_bytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores, at most 8)")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_synthetic.json"))
    args = parser.parse_args(argv)

    runs = []
    for _ in range(2):
        with tempfile.TemporaryDirectory(prefix="bench_synthetic_") as tmp:
            start = time.perf_counter()
            generate_synthetic(Path(tmp) / "set", args.images, args.size, args.seed, workers=args.workers)
            seconds = time.perf_counter() - start
            digest = _json_digest(Path(tmp) / "set")
        runs.append({"seconds": round(seconds, 2), "images_per_s": round(args.images / seconds, 1), "json_sha256": digest})

    identical = runs[0]["json_sha256"] == runs[1]["json_sha256"]
    print(f"\n{'run':>3}  {'seconds':>8}  {'images/s':>8}  annotation json sha256")
    for i, run in enumerate(runs, 1):
        print(f"{i:>3}  {run['seconds']:>8.2f}  {run['images_per_s']:>8.1f}  {run['json_sha256']}")
    print(f"identical: {'yes' if identical else 'no'}")

    result = {
        "images": args.images,
        "image_size": args.size,
        "seed": args.seed,
        "generator_version": GENERATOR_VERSION,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "runs": runs,
        "identical": identical,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"written to {args.out.resolve()}")


if __name__ == "__main__":
    main()
