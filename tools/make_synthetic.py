#!/usr/bin/env python
"""Generate the synthetic shapes detection set: ``spikedet synthetic`` (``--help`` lists the options)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from spikedet.commands.synthetic import main  # noqa: E402

if __name__ == "__main__":
    main()
