#!/usr/bin/env python
"""Live spiking object detection on a camera, a video file or a network stream: ``spikedet demo`` (``--help`` lists the options)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from spikedet.commands.demo import main  # noqa: E402

if __name__ == "__main__":
    main()
