"""ProxylessNAS: differentiable, hardware-aware search on the target task, then retraining.

Reference: ProxylessNAS (Cai, Zhu, Han; ICLR'19; arXiv 1812.00332).
"""

from supernet.nas.latency import LATENCY_LOSSES, LatencyModel, latency_loss
from supernet.nas.mixed_op import SKIP, MixedOp, op_name
from supernet.nas.network import ProxylessSupernet, candidate_ops, ops_to_config, skippable_slots

__all__ = [
    "LATENCY_LOSSES",
    "SKIP",
    "LatencyModel",
    "MixedOp",
    "ProxylessSupernet",
    "candidate_ops",
    "latency_loss",
    "op_name",
    "ops_to_config",
    "skippable_slots",
]
