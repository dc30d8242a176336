"""The spiking core: quantized activations, neurons, conversion, runtime and accounting."""
from .accounting import ENERGY_PRESETS, SpikeMonitor
from .context import SimContext, StatefulModule
from .convert import ConversionError, convert, fold_batchnorm, is_analog, spiking_modules
from .hardware import PRECISIONS, resolve_precision
from .layer import ReadOut, SpikingMaxPool
from .neuron import NEURONS, CIFNeuron, COSNeuron, IFNeuron, PascalNeuron, SignedIFNeuron, SpikingNeuron, register_neuron
from .precision import PrecisionReport, to_precision
from .quant import QCFS, quantized_activations
from .runtime import SpikingNetwork, check_timesteps, select_step
from .schedule import SCHEDULES, OnlineSchedule, PreRunSchedule, Schedule, WakeSleepSchedule, register_schedule
from .surrogate import SURROGATES, if_steps_surrogate, signed_if_steps_surrogate
from .trainable import check_trainable, make_trainable, simulation

__all__ = [
    "ENERGY_PRESETS", "SpikeMonitor", "SimContext", "StatefulModule", "ConversionError", "convert",
    "fold_batchnorm", "is_analog", "spiking_modules", "ReadOut", "SpikingMaxPool", "CIFNeuron", "IFNeuron",
    "SignedIFNeuron", "SpikingNeuron", "QCFS", "quantized_activations", "SpikingNetwork", "check_timesteps",
    "select_step", "OnlineSchedule", "Schedule", "WakeSleepSchedule", "PreRunSchedule", "COSNeuron", "PascalNeuron",
    "SURROGATES", "if_steps_surrogate", "signed_if_steps_surrogate", "check_trainable", "make_trainable", "simulation",
    "NEURONS", "SCHEDULES", "register_neuron", "register_schedule", "PRECISIONS", "resolve_precision", "PrecisionReport",
    "to_precision",
]
