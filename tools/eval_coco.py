#!/usr/bin/env python
"""Evaluate a spiking (or ANN) detector with pycocotools at one or several T: ``spikedet eval`` (``--help`` lists the options)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from spikedet.commands.eval import main  # noqa: E402

if __name__ == "__main__":
    main()
