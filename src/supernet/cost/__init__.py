"""What a subnet costs: MACs, params, peak activation memory, model size, measured latency, and
int8 SRAM / Flash on a microcontroller (per memory planner), with TinyNAS space selection."""

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
from supernet.cost.mcu import PLANNERS, McuCost, McuLayer, mcu_cost
from supernet.cost.mcu_batch import flash_bytes, flash_of_shapes, sram_bytes, sram_of_shapes
from supernet.cost.mcu_net import (
    BlockList,
    MBConvSpec,
    block_list_from_config,
    block_list_from_data,
    load_block_list,
)
from supernet.cost.memory import activation_bytes_per_layer, model_size_bytes, peak_memory_bytes
from supernet.cost.table import COST_KEYS, cost_table, costs_of_shapes

__all__ = [
    "COST_KEYS",
    "PLANNERS",
    "BlockList",
    "DeviceSpec",
    "LatencyResult",
    "LatencyTable",
    "LatencyValidation",
    "MBConvSpec",
    "McuCost",
    "McuLayer",
    "SubnetShapes",
    "activation_bytes_per_layer",
    "block_list_from_config",
    "block_list_from_data",
    "build_latency_table",
    "cost_table",
    "costs_of_shapes",
    "count_params",
    "describe_machine",
    "flash_bytes",
    "flash_of_shapes",
    "get_device",
    "load_block_list",
    "load_device",
    "load_devices",
    "load_latency_table",
    "macs",
    "mcu_cost",
    "measure_latency",
    "measure_macs",
    "measure_subnets",
    "model_size_bytes",
    "params",
    "peak_memory_bytes",
    "sram_bytes",
    "sram_of_shapes",
    "validate_latency_table",
]
