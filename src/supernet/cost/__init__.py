"""What a subnet costs: MACs, params, peak activation memory, model size, measured latency."""

from supernet.cost.device import (
    DeviceSpec,
    describe_machine,
    get_device,
    load_device,
    load_devices,
)
from supernet.cost.latency import LatencyResult, measure_latency
from supernet.cost.lut import LatencyTable, load_latency_table
from supernet.cost.lut_build import build_latency_table, measure_subnets
from supernet.cost.lut_validate import LatencyValidation, validate_latency_table
from supernet.cost.macs import SubnetShapes, count_params, macs, measure_macs, params
from supernet.cost.memory import activation_bytes_per_layer, model_size_bytes, peak_memory_bytes
from supernet.cost.table import COST_KEYS, cost_table, costs_of_shapes

__all__ = [
    "COST_KEYS",
    "DeviceSpec",
    "LatencyResult",
    "LatencyTable",
    "LatencyValidation",
    "SubnetShapes",
    "activation_bytes_per_layer",
    "build_latency_table",
    "cost_table",
    "costs_of_shapes",
    "count_params",
    "describe_machine",
    "get_device",
    "load_device",
    "load_devices",
    "load_latency_table",
    "macs",
    "measure_latency",
    "measure_macs",
    "measure_subnets",
    "model_size_bytes",
    "params",
    "peak_memory_bytes",
    "validate_latency_table",
]
