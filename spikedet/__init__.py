"""spikedet: turn object detectors into spiking object detectors."""
__version__ = "0.1.0"
