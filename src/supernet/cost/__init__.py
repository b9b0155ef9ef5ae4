"""What a subnet costs: MACs and params (latency tables and peak memory come later)."""

from supernet.cost.macs import count_params, measure_macs

__all__ = ["count_params", "measure_macs"]
