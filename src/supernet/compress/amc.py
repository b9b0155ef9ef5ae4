"""AMC: a DDPG agent picks each MBConv block's channel-pruning ratio under a MACs budget.

:func:`run_amc` searches a policy (the agent of :mod:`supernet.compress.ddpg` on the environment
of :mod:`supernet.compress.amc_env`; reward = validation top-1 of the pruned subnet without
fine-tuning, the paper's resource-constrained reward), then fine-tunes and tests three models
with the same recipe: the untouched subnet, uniform channel pruning at the same MACs budget
(every block keeps the same fraction; same L1 channel choice and least-squares refit), and the
AMC policy. Pruned channels are each block's *expanded (middle)* channels — the 1x1 expand
output, the depthwise conv and the project conv's input together — because block outputs feed
residual adds (see :mod:`supernet.compress.channel_prune`).

Reference: He, Lin, Liu, Wang, Li, Han, "AMC: AutoML for Model Compression and Acceleration on
Mobile Devices", ECCV'18, arXiv 1802.03494, Sec. 3.1-3.3, 4.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any

import torch

from supernet.checkpoint import save_checkpoint
from supernet.compress.amc_env import ChannelPruningEnv, min_channels
from supernet.compress.channel_prune import (
    PrunableBlock,
    collect_features,
    find_prunable_blocks,
    policy_macs,
    prune_subnet,
)
from supernet.compress.ddpg import require_rl, run_ddpg
from supernet.compress.results import (
    calib_images,
    check_counts,
    finetune_row,
    progress,
    write_bytes_atomic,
    write_json_atomic,
)
from supernet.compress.rl_plots import plot_channels
from supernet.errors import ConfigError

__all__ = [
    "DEFAULT_BUDGET",
    "FEATURE_IMAGES",
    "MIN_KEEP",
    "parse_macs_budget",
    "run_amc",
    "uniform_policy",
]

logger = logging.getLogger(__name__)

MIN_KEEP = 0.2
"""The least fraction of a block's middle channels a policy keeps (AMC keeps ≥ 20%)."""

FEATURE_IMAGES = 256
"""Calibration images whose feature maps the least-squares refit samples (10 points each)."""

BUDGET_FORMS = (
    "'macs:F' with 0 < F <= 1 or 'macs:P%' (a fraction of the subnet's MACs) or 'macs:N' "
    "(N MACs, batch 1)"
)

DEFAULT_BUDGET = "macs:0.5"
"""The budget when none is given: half the subnet's MACs (the paper's 2x FLOPs reduction)."""


def parse_macs_budget(budget: str | None, subnet_macs: int) -> float:
    """The MACs budget (batch 1) that ``budget`` names: ``macs:0.5`` (or ``macs:50%``, ``50%``)
    is half the subnet's MACs, ``macs:1200000`` is 1.2 M MACs; ``None`` means ``macs:0.5``.

    Raises:
        ConfigError: another form, a non-positive number or a fraction above 1 (the bad value
            and the allowed forms named).
    """
    text = DEFAULT_BUDGET if budget is None else str(budget).strip()
    kind, _, value = text.rpartition(":")
    percent = value.strip().endswith("%")
    try:
        number = float(value.strip().removesuffix("%")) / (100.0 if percent else 1.0)
    except ValueError:
        number = math.nan
    if kind.strip() not in (("macs", "") if percent else ("macs",)) or not (
        math.isfinite(number) and number > 0 and (number <= 1 or not percent)
    ):
        raise ConfigError(f"AMC budget {budget!r} is not allowed; use {BUDGET_FORMS}")
    if number <= 1.0:
        return number * subnet_macs
    if number > subnet_macs:
        raise ConfigError(
            f"AMC budget {budget!r} is above the subnet's own {subnet_macs:,} MACs: nothing to "
            f"prune; use {BUDGET_FORMS}"
        )
    return number


def uniform_policy(
    blocks: list[PrunableBlock], fixed_macs: int, target_macs: float, *, min_keep: float = MIN_KEEP
) -> list[int]:
    """The same kept fraction ``r`` for every block (``floor(r × mid)`` channels, at least the
    minimum), the largest ``r`` whose MACs meet ``target_macs`` (bisection): the uniform
    pruning baseline.

    Raises:
        ConfigError: even ``min_keep`` everywhere is above the budget.
    """
    lowest = min_channels(blocks, min_keep)

    def kept(r: float) -> list[int]:
        return [max(lo, math.floor(r * b.mid_channels)) for b, lo in zip(blocks, lowest,
                                                                         strict=True)]  # fmt: skip

    if policy_macs(blocks, fixed_macs, lowest) > target_macs:
        raise ConfigError(
            f"MACs budget {target_macs:,.0f} is below the smallest reachable "
            f"{policy_macs(blocks, fixed_macs, lowest):,} MACs"
        )
    lo, hi = min_keep, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        fits = policy_macs(blocks, fixed_macs, kept(mid)) <= target_macs
        lo, hi = (mid, hi) if fits else (lo, mid)
    return kept(lo) if policy_macs(blocks, fixed_macs, kept(hi)) > target_macs else kept(hi)


def _export(ctx: Any, model: torch.nn.Module, blocks: list[PrunableBlock], kept: list[int],
            out: Path) -> list[Path]:  # fmt: skip
    """The fine-tuned AMC subnet: ``amc_subnet.pt`` (state_dict + policy, atomic, loadable with
    ``weights_only=True``) and ``amc_subnet.onnx``."""
    from supernet.export.onnx import export_onnx

    policy = {b.name: int(k) for b, k in zip(blocks, kept, strict=True)}
    pt = out / "amc_subnet.pt"
    save_checkpoint(pt, {"state_dict": model.state_dict(), "middle_channels": policy},
                    metadata={"method": "amc", "arch": dict(ctx.arch or {})})  # fmt: skip
    shape = (1, ctx.in_channels, ctx.resolution, ctx.resolution)
    onnx = write_bytes_atomic(out / "amc_subnet.onnx",
                              export_onnx(model, shape, dynamic_batch=True))  # fmt: skip
    return [pt, onnx]


def run_amc(ctx: Any, *, budget: str | None, episodes: int, finetune_steps: int) -> dict[str, Any]:
    """Search an AMC channel-pruning policy for ``ctx.model`` under ``budget``, then fine-tune
    and test it beside the untouched subnet and uniform pruning at the same MACs.

    Writes into ``ctx.out_dir``: ``amc_policy.json`` (channels per block for each model, MACs,
    every episode's reward), ``amc_subnet.pt`` + ``amc_subnet.onnx`` (the fine-tuned AMC
    subnet), ``amc_policy.png`` (channels per block; reward per episode).

    Shapes: ``ctx.model`` maps ``[B, ctx.in_channels, R, R]`` (``R = ctx.resolution``) to
    logits ``[B, ctx.num_classes]``; ``ctx.calib_images`` is ``[N, C, R, R]``.

    Args:
        ctx: the compression context (``supernet.compress.CompressContext`` or any object with
            its attributes).
        budget: ``macs:F`` / ``macs:P%`` (fraction of the subnet's MACs) or ``macs:N`` (MACs,
            batch 1); ``None``: :data:`DEFAULT_BUDGET`.
        episodes: DDPG episodes (one pruned subnet scored on the validation images each).
        finetune_steps: ``ctx.finetune`` steps for each of the three models.

    Returns:
        ``{"rows": [untouched, uniform, amc] (keys :data:`~supernet.compress.results.ROW_KEYS`),
        "artifacts": [paths], "plots": [paths]}``.

    Raises:
        ConfigError: a bad budget (named, with the forms allowed), a budget below the smallest
            MACs pruning reaches (named), bad counts, or a model with no prunable block
            (the supported block types named).
        MissingExtraError: stable-baselines3 / gymnasium are not installed.

    Reference: AMC, arXiv 1802.03494, Sec. 3.1-3.3.
    """
    check_counts(episodes, finetune_steps)
    require_rl()
    out = Path(ctx.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(ctx.model).cpu().eval()
    shape = (1, ctx.in_channels, ctx.resolution, ctx.resolution)
    blocks, fixed = find_prunable_blocks(model, shape)
    total = policy_macs(blocks, fixed, [b.mid_channels for b in blocks])
    target = parse_macs_budget(budget, total)
    torch.manual_seed(ctx.seed)
    features = collect_features(model, blocks, calib_images(ctx, FEATURE_IMAGES), seed=ctx.seed)

    def evaluate_policy(kept: list[int]) -> float:
        return float(ctx.evaluate(prune_subnet(model, blocks, kept, features).eval()))

    with progress(ctx, "AMC search", episodes) as bar:
        env = ChannelPruningEnv.make(
            blocks, fixed, target, evaluate_policy, min_keep=MIN_KEEP,
            on_episode=lambda i, acc, _k: bar.update(i + 1, episodes, f"val {acc:.2f}%"),
        )  # fmt: skip
        run_ddpg(env, episodes=episodes, steps_per_episode=len(blocks), seed=ctx.seed)
    best_val, amc_kept = env.best
    uni_kept = uniform_policy(blocks, fixed, target)
    policies = {"uniform": uni_kept, "amc": amc_kept}
    candidates = [("untouched", copy.deepcopy(model), None)]
    candidates += [(name, prune_subnet(model, blocks, k, features), k)
                   for name, k in policies.items()]  # fmt: skip
    rows = []
    with progress(ctx, "fine-tuning", len(candidates)) as bar:
        for i, (name, net, kept) in enumerate(candidates):
            bar.update(i, len(candidates), name)
            macs = total if kept is None else policy_macs(blocks, fixed, kept)
            params = sum(p.numel() for p in net.parameters())
            val = best_val if name == "amc" else float(ctx.evaluate(net.eval()))
            rows.append(finetune_row(
                ctx, net, finetune_steps, val_before=val, method=f"amc:{name}", macs=macs,
                params=params, size_bytes=4 * params, weight_bits=32, activation_bits=32,
            ))  # fmt: skip
            candidates[i] = (name, net, kept)
        bar.update(len(candidates), len(candidates), "done")
    artifacts = _export(ctx, candidates[-1][1], blocks, amc_kept, out)
    doc = {
        "budget": budget, "target_macs": target, "subnet_macs": total, "fixed_macs": fixed,
        "blocks": [b.name for b in blocks],
        "middle_channels": {"untouched": [b.mid_channels for b in blocks], **policies},
        "macs": {k: policy_macs(blocks, fixed, v) for k, v in policies.items()},
        "episodes": [{"val_acc": a, "middle_channels": k} for a, k in env.history],
        "rows": rows, "seed": ctx.seed,
    }  # fmt: skip
    artifacts.insert(0, write_json_atomic(out / "amc_policy.json", doc))
    plot = plot_channels(out / "amc_policy.png", [b.name for b in blocks],
                         [b.mid_channels for b in blocks], policies,
                         [a for a, _ in env.history])  # fmt: skip
    logger.info("AMC: %s", rows)
    return {"rows": rows, "artifacts": artifacts, "plots": [plot]}
