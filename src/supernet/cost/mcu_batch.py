"""int8 SRAM and Flash of many arch configs at once: the numbers of :func:`supernet.cost.mcu.
mcu_cost` (see that module for what each memory planner counts), computed from the layer shapes
of a whole ``ConfigBatch`` with numpy (``naive``, ``tinyengine``, Flash; ``tflm`` through
:mod:`supernet.cost.tflm_batch`: one padded timeline for the batch, each subnet's greedy plan in
compiled code).

Reference: MCUNet (Lin et al., NeurIPS'20, arXiv 2007.10319), Sec. 3.1-3.2; TensorFlow Lite
Micro (arXiv 2010.08678), Sec. 4.4.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from supernet.cost.macs import FIRST_BLOCK_KERNEL_SIZE, STEM_KERNEL_SIZE, SubnetShapes
from supernet.cost.mcu import (
    BIAS_BYTES,
    FLASH_FIXED_BYTES,
    FLASH_PER_OP_BYTES,
    QUANT_BYTES_PER_CHANNEL,
    check_planner,
)
from supernet.cost.tflm_batch import tflm_sram_of_shapes
from supernet.cost.tflm_persistent import persistent_of_shapes
from supernet.space import ArchConfig, ConfigBatch, SearchSpace

__all__ = ["flash_bytes", "flash_of_shapes", "sram_bytes", "sram_of_shapes"]

_PER_CHANNEL = BIAS_BYTES + QUANT_BYTES_PER_CHANNEL


def _layer_flash(weights: np.ndarray | int, channels: np.ndarray | int) -> np.ndarray | int:
    return weights + channels * _PER_CHANNEL + FLASH_PER_OP_BYTES


def _peak_fixed(sh: SubnetShapes, planner: str) -> np.ndarray:
    """Peak (int8 bytes) of the stem, the fixed first block and the head, ``[N]``."""
    sp = sh.space
    image = sh.resolution**2 * sp.input_channels
    stem_area = sh.stem_size**2
    stem_out = stem_area * sp.stem_width
    residual = sh.first_block_residual
    if planner == "tinyengine":
        first_dw = 2 * stem_out if residual else stem_out + stem_area
    else:
        first_dw = 2 * stem_out + (stem_out if residual else 0)
    final_area = sh.final_size**2
    peak = np.maximum(image + stem_out, first_dw)
    peak = np.maximum(peak, stem_out + stem_area * sp.first_block_width)
    peak = np.maximum(peak, final_area * (sh.last_width + sp.final_expand_width))
    head = max(sp.final_expand_width + sp.feature_mix_width, sp.feature_mix_width + sp.num_classes)
    return np.maximum(peak, head)


def sram_of_shapes(shapes: SubnetShapes, planner: str) -> np.ndarray:
    """int8 peak activation bytes of subnets whose shapes are built, ``[N]`` int64.

    Raises:
        ConfigError: an unknown planner (names it and :data:`~supernet.cost.mcu.PLANNERS`).
    """
    check_planner(planner)
    sh = shapes
    if planner == "tflm":
        return tflm_sram_of_shapes(sh)
    if planner == "tflm-arena":  # the whole arena: planned activations + persistent part
        return tflm_sram_of_shapes(sh) + persistent_of_shapes(sh)
    # Per block slot [N, S]: expand x + t_in, depthwise t_in + t_out (tinyengine: + one output
    # channel) + the kept skip x, project t_out + y; few temporaries (this runs per search batch).
    in_area, out_area = sh.in_size**2, sh.out_size**2
    mid = sh.mid_channels
    t_in = in_area * mid
    expand = t_in + in_area * sh.in_channels
    dw = t_in + (out_area if planner == "tinyengine" else out_area * mid)
    dw += in_area * np.where(sh.residual, sh.in_channels, 0)
    per_slot = np.maximum(expand, dw)
    np.maximum(per_slot, out_area * (mid + sh.out_channels), out=per_slot)
    per_slot *= sh.active  # inactive slots hold nothing
    blocks = per_slot.max(axis=1)
    return np.maximum(blocks, _peak_fixed(sh, planner)).astype(np.int64)


@functools.lru_cache(maxsize=32)
def _fixed_flash(space: SearchSpace) -> int:
    """Flash bytes of the stem, the fixed first block, the head and the file (per space)."""
    hswish = int(space.head_act == "h_swish")  # one HARD_SWISH op after each head conv
    stem, first = space.stem_width, space.first_block_width
    last, fe, fm = space.stages[-1].width, space.final_expand_width, space.feature_mix_width
    total = _layer_flash(space.input_channels * STEM_KERNEL_SIZE**2 * stem, stem)
    total += _layer_flash(stem * FIRST_BLOCK_KERNEL_SIZE**2, stem)  # first depthwise (relu)
    total += _layer_flash(stem * first, first)
    total += FLASH_PER_OP_BYTES * (int(stem == first) + 3 * hswish + 1)  # add, acts, pool
    total += _layer_flash(last * fe, fe) + _layer_flash(fe * fm, fm)
    total += _layer_flash(fm * space.num_classes, space.num_classes)
    return int(total + FLASH_FIXED_BYTES)


def flash_of_shapes(shapes: SubnetShapes) -> np.ndarray:
    """int8 Flash bytes of subnets whose shapes are built, ``[N]`` int64."""
    sh = shapes
    sp = sh.space
    mid, se, k = sh.mid_channels, sh.se_mid_channels, sh.kernel_size
    cin, cout = sh.in_channels[None, :], sh.out_channels[None, :]
    hswish = np.array([s.act == "h_swish" for s in sp.stages for _ in range(s.max_depth)])
    ops_without_weights = (
        2 * hswish[None, :]  # HARD_SWISH after expand and depthwise
        + np.where(se > 0, 3, 0)  # SE: MEAN, gate, MUL
        + sh.residual[None, :]  # ADD
    )
    per_slot = (
        _layer_flash(cin * mid, mid)
        + _layer_flash(mid * k**2, mid)
        + np.where(se > 0, _layer_flash(mid * se, se) + _layer_flash(se * mid, mid), 0)
        + _layer_flash(mid * cout, cout)
        + ops_without_weights * FLASH_PER_OP_BYTES
    )
    return (np.where(sh.active, per_slot, 0).sum(axis=1) + _fixed_flash(sp)).astype(np.int64)


def sram_bytes(
    configs: Sequence[ArchConfig] | ConfigBatch, space: SearchSpace, *, planner: str = "tflm"
) -> np.ndarray:
    """int8 peak activation memory (SRAM) of each config's subnet under ``planner``.

    Shapes: N configs (a list or a :class:`ConfigBatch`) → ``[N]`` int64 (bytes).

    Raises:
        ConfigError: a config not valid in ``space`` or an unknown planner.

    Reference: MCUNet, arXiv 2007.10319, Sec. 3.2; TFLM, arXiv 2010.08678, Sec. 4.4.
    """
    check_planner(planner)
    return sram_of_shapes(SubnetShapes.from_configs(configs, space), planner)


def flash_bytes(configs: Sequence[ArchConfig] | ConfigBatch, space: SearchSpace) -> np.ndarray:
    """int8 Flash of each config's subnet (weights, int32 biases, per-channel quantization
    parameters, operator and file overheads; see :mod:`supernet.cost.mcu`).

    Shapes: N configs (a list or a :class:`ConfigBatch`) → ``[N]`` int64 (bytes).

    Raises:
        ConfigError: a config not valid in ``space``.

    Reference: MCUNet, arXiv 2007.10319, Sec. 3.1 (Flash holds the weights).
    """
    return flash_of_shapes(SubnetShapes.from_configs(configs, space))
