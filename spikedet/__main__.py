"""``python -m spikedet COMMAND ...``: the same as the ``spikedet`` console script."""
from spikedet.commands import main

main()
