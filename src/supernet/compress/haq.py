"""HAQ: a DDPG agent picks each layer's weight and activation bit width (2-8) under a model-size
budget; the policy is fine-tuned and compared with uniform quantization at the same size.

:func:`run_haq` fake-quantizes every conv and linear layer of the (BN-folded) subnet
(:mod:`supernet.compress.mixed_precision`: ``torch.fake_quantize_per_channel_affine`` /
``per_tensor_affine`` with ``torch.ao`` histogram-observer ranges; :mod:`supernet.quant` is the
int8-only PT2E path and cannot express 2-7 bits), searches the bits with the agent of
:mod:`supernet.compress.ddpg` on :mod:`supernet.compress.haq_env` (reward ``0.1 × (val top-1 of
the quantized subnet − val top-1 of the float subnet)``, in points, no fine-tuning: the paper's
Eq. 3), then fine-tunes and tests the untouched float subnet, the uniform baseline and the HAQ
policy with the same recipe (quantization-aware: straight-through gradients).

Budgets: ``size:uniformB`` is the size of uniform ``B``-bit weights; ``size:BYTES`` is a size in
bytes. The uniform baseline is ``W_b A_b`` with ``b`` the widest uniform width within the size,
and HAQ's activation bits are budgeted at that baseline's activation traffic (input elements ×
bits), so both sides of the comparison pay the same size *and* the same activation bits.
``latency:MS`` is not supported: the device latency tables of :mod:`supernet.cost` time float
blocks and have no entry per bit width.

Reference: Wang, Liu, Lin, Lin, Han, "HAQ: Hardware-Aware Automated Quantization with Mixed
Precision", CVPR'19, arXiv 1811.08886, Sec. 3.1-3.4, 4.3 (model-size-constrained quantization).
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any

import torch

from supernet.checkpoint import save_checkpoint
from supernet.compress.ddpg import require_rl, run_ddpg
from supernet.compress.haq_env import QuantizationEnv
from supernet.compress.mixed_precision import (
    BITS,
    LayerInfo,
    attach_fake_quant,
    quant_layers,
    set_bits,
    weight_bytes,
)
from supernet.compress.results import (
    calib_images,
    check_counts,
    finetune_row,
    progress,
    write_json_atomic,
)
from supernet.compress.rl_plots import plot_bits
from supernet.errors import ConfigError

__all__ = ["CALIB_IMAGES", "DEFAULT_BUDGET", "HaqBudget", "parse_size_budget", "run_haq"]

logger = logging.getLogger(__name__)

CALIB_IMAGES = 256
"""Calibration images for the activation ranges."""

BUDGET_FORMS = (
    "'size:uniformB' with B in 2..8 (the size of uniform B-bit weights) or 'size:BYTES' "
    "(model size in bytes); 'latency:MS' is not supported (no per-bit latency table)"
)

DEFAULT_BUDGET = "size:uniform4"
"""The budget when none is given: the size of uniform 4-bit weights."""

HaqBudget = tuple[float, int]
"""(size budget in bytes, the uniform baseline's bit width)."""


def parse_size_budget(budget: str | None, layers: list[LayerInfo]) -> HaqBudget:
    """``(size_bytes, uniform_bits)`` of ``budget``: ``size:uniform4`` → the size of 4-bit
    weights and 4; ``size:30000`` → 30,000 bytes and the widest uniform width within it;
    ``None`` → :data:`DEFAULT_BUDGET`.

    Raises:
        ConfigError: another form (``latency:`` included), a width outside 2..8, or a size
            below uniform 2-bit (named, with the smallest size reachable).
    """
    kind, _, value = str(DEFAULT_BUDGET if budget is None else budget).partition(":")
    kind, value = kind.strip(), value.strip()
    if kind == "size" and value.startswith("uniform"):
        bits = value.removeprefix("uniform")
        if not bits.isdigit() or int(bits) not in BITS:
            raise ConfigError(f"HAQ budget {budget!r} is not allowed; use {BUDGET_FORMS}")
        return weight_bytes(layers, [int(bits)] * len(layers)), int(bits)
    try:
        size = float(value) if kind == "size" else math.nan
    except ValueError:
        size = math.nan
    if not math.isfinite(size) or size <= 0:
        raise ConfigError(f"HAQ budget {budget!r} is not allowed; use {BUDGET_FORMS}")
    fits = [b for b in BITS if weight_bytes(layers, [b] * len(layers)) <= size]
    if not fits:
        least = weight_bytes(layers, [BITS[0]] * len(layers))
        raise ConfigError(
            f"HAQ budget {budget!r} is below the smallest size reachable, {least:,.0f} bytes "
            f"(every layer at {BITS[0]} bits)"
        )
    return size, max(fits)


def _mean_bits(counts: list[int], bits: list[int]) -> float:
    return round(sum(c * b for c, b in zip(counts, bits, strict=True)) / sum(counts), 3)


def run_haq(ctx: Any, *, budget: str | None, episodes: int, finetune_steps: int) -> dict[str, Any]:
    """Search a HAQ mixed-precision policy for ``ctx.model`` under a size ``budget``, then
    fine-tune and test it beside the untouched float subnet and uniform quantization.

    Writes into ``ctx.out_dir``: ``haq_policy.json`` (bits per layer for each model, sizes,
    every episode's reward), ``haq_subnet.pt`` (the fine-tuned fake-quantized subnet's
    state_dict and bits; atomic, ``weights_only=True``), ``haq_bits.png`` (bits per layer, like
    the paper's Fig. 5/6). No ONNX: ONNX QuantizeLinear has no 2-7-bit types.

    Shapes: ``ctx.model`` maps ``[B, C, R, R]`` to ``[B, ctx.num_classes]``.

    Args:
        ctx: the compression context (``supernet.compress.CompressContext`` or any object with
            its attributes).
        budget: ``size:uniformB`` or ``size:BYTES`` (see the module docstring); ``None``:
            :data:`DEFAULT_BUDGET`.
        episodes: DDPG episodes (one quantized subnet scored on the validation images each).
        finetune_steps: ``ctx.finetune`` steps for each of the three models.

    Returns:
        ``{"rows": [untouched, uniform, haq], "artifacts": [paths], "plots": [paths]}``.

    Raises:
        ConfigError: a bad budget (named, with the forms allowed), bad counts, a layer that
            cannot be fake-quantized (named).
        MissingExtraError: stable-baselines3 / gymnasium are not installed.

    Reference: HAQ, arXiv 1811.08886, Sec. 3, 4.3.
    """
    check_counts(episodes, finetune_steps)
    require_rl()
    out = Path(ctx.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(ctx.model).cpu().eval()
    torch.manual_seed(ctx.seed)
    qmodel, layers = attach_fake_quant(model, calib_images(ctx, CALIB_IMAGES))
    size_budget, uniform = parse_size_budget(budget, layers)
    activations = [i.activations for i in layers]
    act_budget = float(uniform * sum(activations))
    float_val = float(ctx.evaluate(model))

    def evaluate_policy(w: list[int], a: list[int]) -> float:
        return 0.1 * (float(ctx.evaluate(set_bits(qmodel, w, a).eval())) - float_val)

    with progress(ctx, "HAQ search", episodes) as bar:
        env = QuantizationEnv.make(
            layers, size_budget, act_budget, evaluate_policy,
            on_episode=lambda i, r, *_: bar.update(i + 1, episodes, f"reward {r:+.3f}"),
        )  # fmt: skip
        run_ddpg(env, episodes=episodes, steps_per_episode=2 * len(layers), seed=ctx.seed)
    best_reward, haq_w, haq_a = env.best
    n = len(layers)
    policies = {f"uniform{uniform}": ([uniform] * n, [uniform] * n), "haq": (haq_w, haq_a)}
    weights = [i.weights for i in layers]
    params = sum(p.numel() for p in model.parameters())
    rows = [finetune_row(ctx, copy.deepcopy(model), finetune_steps, val_before=float_val,
                         method="haq:untouched", macs="", params=params, size_bytes=4 * params,
                         weight_bits=32, activation_bits=32)]  # fmt: skip
    tuned: dict[str, torch.nn.Module] = {}
    with progress(ctx, "fine-tuning", len(policies)) as bar:
        for i, (name, (w, a)) in enumerate(policies.items()):
            bar.update(i, len(policies), name)
            net = set_bits(copy.deepcopy(qmodel), w, a)
            val = float_val + 10 * best_reward if name == "haq" else float(ctx.evaluate(net))
            rows.append(finetune_row(
                ctx, net, finetune_steps, val_before=val, method=f"haq:{name}", macs="",
                params=params, size_bytes=round(weight_bytes(layers, w)),
                weight_bits=_mean_bits(weights, w), activation_bits=_mean_bits(activations, a),
            ))  # fmt: skip
            tuned[name] = net
        bar.update(len(policies), len(policies), "done")
    names = [i.name for i in layers]
    pt = out / "haq_subnet.pt"
    qparams = {n: m.act_qparams for n, m in quant_layers(tuned["haq"])}
    save_checkpoint(pt, {"state_dict": tuned["haq"].state_dict(), "weight_bits": haq_w,
                         "activation_bits": haq_a, "layers": names,
                         "activation_qparams": qparams},
                    metadata={"method": "haq", "arch": dict(ctx.arch or {})})  # fmt: skip
    doc = {
        "budget": budget, "size_budget_bytes": size_budget, "uniform_bits": uniform,
        "activation_budget_bits": act_budget, "float_val_acc": float_val, "layers": names,
        "weights": weights, "activations": activations,
        "policies": {k: {"weight_bits": w, "activation_bits": a} for k, (w, a) in policies.items()},
        "episodes": [{"reward": r, "weight_bits": w, "activation_bits": a}
                     for r, w, a in env.history],
        "rows": rows, "seed": ctx.seed,
    }  # fmt: skip
    artifacts = [write_json_atomic(out / "haq_policy.json", doc), pt]
    plot = plot_bits(out / "haq_bits.png", names, haq_w, haq_a, weights, uniform_bits=uniform)
    logger.info("HAQ: %s", rows)
    return {"rows": rows, "artifacts": artifacts, "plots": [plot]}
