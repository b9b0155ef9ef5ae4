"""ProxylessNAS: differentiable, hardware-aware search on the target task, then retraining.

Reference: ProxylessNAS (Cai, Zhu, Han; ICLR'19; arXiv 1812.00332).
"""

from supernet.nas.config import ProxylessConfig
from supernet.nas.latency import LATENCY_LOSSES, LatencyModel, latency_loss
from supernet.nas.mixed_op import SKIP, MixedOp, op_name
from supernet.nas.network import ProxylessSupernet, candidate_ops, ops_to_config, skippable_slots
from supernet.nas.plot import plot_alpha_history
from supernet.nas.retrain import RetrainResult, build_derived, retrain
from supernet.nas.run import ProxylessRun, run_proxyless
from supernet.nas.search import SearchReporter, SearchResult, arch_step, search

__all__ = [
    "LATENCY_LOSSES",
    "SKIP",
    "LatencyModel",
    "MixedOp",
    "ProxylessConfig",
    "ProxylessRun",
    "ProxylessSupernet",
    "RetrainResult",
    "SearchReporter",
    "SearchResult",
    "arch_step",
    "build_derived",
    "candidate_ops",
    "latency_loss",
    "op_name",
    "ops_to_config",
    "plot_alpha_history",
    "retrain",
    "run_proxyless",
    "search",
    "skippable_slots",
]
