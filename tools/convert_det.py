#!/usr/bin/env python
"""Convert a clip-quantized detector into a spiking detector and evaluate it at several T: ``spikedet convert`` (``--help`` lists the options)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from spikedet.commands.convert import main  # noqa: E402

if __name__ == "__main__":
    main()
