"""The papers' comparisons at small scale: progressive shrinking vs. the alternatives."""

from supernet.ablate.ps import (
    ARMS,
    AblationRow,
    ablation_subnets,
    no_ps_config,
    run_ps_ablation,
    scratch_config,
)

__all__ = [
    "ARMS",
    "AblationRow",
    "ablation_subnets",
    "no_ps_config",
    "run_ps_ablation",
    "scratch_config",
]
