"""What a defense against gradient leakage costs in accuracy: train the transfer task with every
step's shared update defended, and compare test accuracy with the undefended training.

The setting is federated: each step, the device computes the gradient of its batch, defends it
(:class:`~supernet.privacy.defenses.Defense`) and shares it, and the model is stepped with what was
shared. So the accuracy below is that of a model trained only on defended updates — the price paid
for the leakage :func:`~supernet.privacy.experiment.run_dlg` measures.

Reference: Zhu, Liu, Han, "Deep Leakage from Gradients", NeurIPS'19, arXiv 1906.08935, Sec. 5
(the defenses and their accuracy: Fig. 7 / Table 1 there, for noise, half precision and pruning);
TinyTL, arXiv 2007.11622, Sec. 4.1 (the transfer recipe each method trains with).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from supernet.errors import ConfigError
from supernet.privacy.defenses import Defense
from supernet.privacy.victims import transfer_base
from supernet.train import LoadedRun

__all__ = ["DefenseCost", "defense_accuracy_cost"]


@dataclass(frozen=True)
class DefenseCost:
    """One method × defense trained on the transfer target.

    Attributes:
        method: the TinyTL method; defense: the defense's spelling (``none`` is the baseline).
        test_accuracy, val_accuracy: top-1 (%) after training on defended updates.
        drop_points: ``test_accuracy`` of ``none`` minus this one (percentage points; 0 for none,
            NaN when ``none`` was not trained).
        steps: optimizer steps; seconds: wall time of the training.
    """

    method: str
    defense: str
    test_accuracy: float
    val_accuracy: float
    drop_points: float
    steps: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values."""
        return asdict(self)


def _defended(defense: Defense, seed: int) -> Callable[[dict[str, torch.Tensor], int], dict]:
    # a new noise draw every step, reproducible from the seed
    return lambda grads, step: defense.apply(grads, seed=seed * 1_000_003 + step)


def defense_accuracy_cost(
    run: str | Path | LoadedRun,
    method: str,
    defenses: Sequence[Defense],
    *,
    target: str = "digits",
    subnet: str = "smallest",
    epochs: int = 5,
    train_limit: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    on_result: Callable[[DefenseCost], None] | None = None,
) -> list[DefenseCost]:
    """Train ``subnet`` of ``run`` on ``target`` with TinyTL ``method`` once per defense, every
    step's update defended, and return the test accuracies.

    Every training starts from the same weights (the subnet, BN re-calibrated on the target; the
    new classifier drawn from ``seed``) with the same recipe (:class:`~supernet.transfer.recipe.
    TransferConfig` defaults but ``epochs`` and ``train_limit``) and the same batch order; only
    the defense differs. ``none`` is trained first when listed, so the others get a drop.

    Shapes: the target's images ``[N, C, H, W]`` are resized to the subnet's resolution.

    Raises:
        ConfigError: no defense, an unknown method / target / subnet, epochs < 1.
        RunDirError, CheckpointError, DataNotFoundError: the run cannot be loaded.
    """
    from supernet.transfer import check_method
    from supernet.transfer.recipe import TransferConfig, build_configured_model, train_transfer

    check_method(method)
    if not defenses:
        raise ConfigError("defenses is empty; give at least one (e.g. none, pruning:0.2)")
    config = TransferConfig(method=method, epochs=epochs, train_limit=train_limit, seed=seed)
    run, arch, data, base = transfer_base(run, subnet, target, device=device)
    order = sorted(defenses, key=lambda d: d.kind != "none")
    results: list[DefenseCost] = []
    baseline = float("nan")
    for defense in order:
        model = build_configured_model(base, data.num_classes, config, resolution=arch.resolution)
        transform = None if defense.kind == "none" else _defended(defense, seed)
        result = train_transfer(model, data.splits, config, resolution=arch.resolution,
                                device=run.device, label=f"{method} {defense}",
                                update_transform=transform)  # fmt: skip
        if defense.kind == "none":
            baseline = result.test_accuracy
        row = DefenseCost(method, str(defense), result.test_accuracy, result.val_accuracy,
                          baseline - result.test_accuracy, result.steps,
                          result.train_seconds)  # fmt: skip
        results.append(row)
        if on_result is not None:
            on_result(row)
    return results
