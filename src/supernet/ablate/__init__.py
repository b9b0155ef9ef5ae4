"""The papers' comparisons at small scale: progressive shrinking vs. the alternatives, and the
PS subnets vs. the family scaled along one dimension."""

from supernet.ablate.ps import (
    ARMS,
    AblationRow,
    ablation_subnets,
    no_ps_config,
    run_ps_ablation,
    scratch_config,
)
from supernet.ablate.scaled import (
    ScaledPoint,
    best_within,
    pareto_front,
    run_scaled_ablation,
    scaled_baselines,
)

__all__ = [
    "ARMS",
    "AblationRow",
    "ScaledPoint",
    "ablation_subnets",
    "best_within",
    "no_ps_config",
    "pareto_front",
    "run_ps_ablation",
    "run_scaled_ablation",
    "scaled_baselines",
    "scratch_config",
]
