"""Progressive shrinking as data: each phase restricts the search space; LR follows a cosine per
phase with optional linear warm-up.

Reference: Once-for-All (arXiv 1908.09791), Sec. 3.2 and Fig. 2; cosine LR (Loshchilov & Hutter,
SGDR, arXiv 1608.03983).
"""

from __future__ import annotations

import math

from supernet.space import SearchSpace
from supernet.train.config import Choice, PhaseConfig

__all__ = ["lr_at", "phase_space"]


def _resolve(choice: Choice, allowed: tuple[int, ...]) -> tuple[int, ...]:
    if choice == "all":
        return allowed
    if choice == "max":
        return (max(allowed),)
    if choice == "min":
        return (min(allowed),)
    return tuple(choice)  # validated by SearchSpace.restrict


def phase_space(space: SearchSpace, phase: PhaseConfig) -> SearchSpace:
    """The sub-space a phase samples subnets from.

    Raises:
        ConfigError: when the phase names a choice the space does not have.
    """
    return space.restrict(
        resolutions=_resolve(phase.resolutions, space.resolutions),
        kernel_sizes=_resolve(phase.kernel_sizes, space.kernel_sizes),
        expand_ratios=_resolve(phase.expand_ratios, space.expand_ratios),
        depths=_resolve(phase.depths, space.depths),
    )


def lr_at(
    step: int, total_steps: int, base_lr: float, warmup_steps: int = 0, warmup: str = "linear"
) -> float:
    """Learning rate at ``step`` (0-based) of a phase: warm-up over ``warmup_steps`` — linear
    from ``base_lr / warmup_steps`` (``"linear"``) or constant at ``base_lr`` (``"constant"``, the
    Once-for-All reference code's ``warmup_lr = -1``) — then cosine to 0 over the rest."""
    if warmup_steps > 0 and step < warmup_steps:
        if warmup == "constant":
            return base_lr
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * t))
