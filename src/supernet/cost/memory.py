"""Peak activation memory (SRAM) and model size (flash) of subnets, batched over arch configs.

Peak activation memory is counted for inference at batch 1 the way MCUNet / TinyEngine schedule
a network layer by layer (Lin et al., "MCUNet: Tiny Deep Learning on IoT Devices", NeurIPS'20,
arXiv 2007.10319, Sec. 3; in-place depth-wise convolution: TinyEngine, ibid. Sec. 3.2; the same
layer-by-layer baseline as the per-block memory profiles of MCUNetV2, arXiv 2110.15352): while one
layer runs, the tensors alive are its input and its output, plus the block input kept for a
residual skip while inside a residual block. The peak is the largest such sum over all layers.
Exactly, per layer (in elements; × bytes per element at the end):

- stem 3x3 conv: input image + stem output.
- fixed first MBConv (no expand conv): its 3x3 depthwise conv, then 1x1 project, counted like
  the steps below.
- MBConv block with input ``x``, hidden tensor ``t`` (``mid`` channels) and output ``y``:

  - 1x1 expand: ``x + t_in`` (``x`` is also the residual, so it is counted once);
  - kxk depthwise, done in place: ``max(t_in, t_out)`` — one buffer — ``+ x`` if the block has
    a residual skip (then ``x`` cannot be overwritten). In the first MBConv the depthwise input
    is ``x`` itself, so this rule gives ``x + t_out`` there, i.e. no in-place update of ``x``.
    TinyEngine's one-channel temporary buffer (``t_out / mid`` elements) is not counted;
  - squeeze-and-excitation: ``t_out`` stays alive while its pooled vector (``mid`` values) and
    hidden vector (``se_mid`` values) exist; the gate then scales ``t_out`` in place, so the SE
    step holds ``t_out + mid + se_mid`` (``+ x`` with a residual). These vectors are tiny but
    counted;
  - 1x1 project: ``t_out + y`` (``+ x`` with a residual); the residual add is then done in place
    into ``y`` (``y + x``, never larger than the project step).

- final 1x1 expand: input + output; global average pool: input + pooled vector; feature-mix 1x1
  conv: pooled vector + its output; linear classifier: features + logits.

BN and activations are fused into the preceding conv (no extra buffer); weights live in flash
and are not activation memory; no tiling / patch-based inference (MCUNetV2) is assumed.

Model size (flash) is the parameter count × bytes per weight (BN folded into the convs at
deployment would shrink it slightly; it is counted here as the module holds it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from supernet.cost.macs import SubnetShapes
from supernet.errors import ConfigError
from supernet.space import ArchConfig, ConfigBatch, SearchSpace

__all__ = [
    "FP32_BYTES",
    "activation_bytes_per_layer",
    "model_size_bytes",
    "peak_elements",
    "peak_memory_bytes",
]

ALLOWED_BYTES = (1, 2, 4)  # int8, fp16 / bf16, fp32
FP32_BYTES = 4
"""Bytes of one fp32 activation or weight: the default of every byte count here."""


def _check_bytes(name: str, value: int) -> int:
    if isinstance(value, bool) or value not in ALLOWED_BYTES:
        raise ConfigError(f"{name} = {value!r} is not allowed; choose from {ALLOWED_BYTES}")
    return int(value)


def _block_elements(sh: SubnetShapes) -> dict[str, np.ndarray]:
    """Alive activation elements while each block slot's layers run, all slots at once: ``expand``,
    ``depthwise``, ``se`` and ``project``, each ``[N, S]`` int64 (0 where the slot is inactive;
    ``se`` also 0 where the slot's stage has no SE). One array expression per layer kind instead
    of a Python loop over slots: the search evaluates this for every batch of candidates."""
    in_area, out_area = sh.in_size**2, sh.out_size**2
    mid = sh.mid_channels
    x = in_area * sh.in_channels[None, :]
    t_in, t_out, y = in_area * mid, out_area * mid, out_area * sh.out_channels[None, :]
    skip = np.where(sh.residual[None, :], x, 0)
    active = sh.active
    return {
        "expand": np.where(active, x + t_in, 0),
        "depthwise": np.where(active, np.maximum(t_in, t_out) + skip, 0),
        "se": np.where(active & sh.use_se[None, :], t_out + mid + sh.se_mid_channels + skip, 0),
        "project": np.where(active, t_out + y + skip, 0),
    }


def _fixed_elements(
    sh: SubnetShapes,
) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
    """Alive elements of the layers before the block slots (stem, first block) and after them
    (final expand, pool, feature mix, classifier): ``(name, [N])`` pairs in execution order."""
    sp = sh.space
    zero = np.zeros_like(sh.resolution)
    image = sh.resolution**2 * sp.input_channels
    stem_area = sh.stem_size**2
    stem_out = stem_area * sp.stem_width
    skip = stem_out if sh.first_block_residual else 0
    first_out = stem_area * sp.first_block_width
    before = [
        ("stem", image + stem_out),
        ("first_block.depthwise", stem_out + skip),  # max(in, out) = stem_out, plus the skip
        ("first_block.project", stem_out + first_out + skip),
    ]
    final_area = sh.final_size**2
    final_in = final_area * sh.last_width
    final_out = final_area * sp.final_expand_width
    after = [
        ("final_expand", final_in + final_out),
        ("pool", final_out + sp.final_expand_width),
        ("feature_mix", zero + sp.final_expand_width + sp.feature_mix_width),
        ("classifier", zero + sp.feature_mix_width + sp.num_classes),
    ]
    return before, after


def _alive_elements(sh: SubnetShapes) -> tuple[list[str], np.ndarray]:
    """Layer names and alive activation elements per layer, ``[N, L]`` int64 (0 where a block
    slot is inactive)."""
    before, after = _fixed_elements(sh)
    blocks = _block_elements(sh)
    columns = list(before)
    for s in range(sh.space.num_blocks):
        kinds = ("expand", "depthwise", "se", "project") if sh.use_se[s] else (
            "expand", "depthwise", "project")  # fmt: skip
        columns += [(f"blocks.{s}.{kind}", blocks[kind][:, s]) for kind in kinds]
    columns += after
    names = [name for name, _ in columns]
    return names, np.stack([c for _, c in columns], axis=1).astype(np.int64)


def activation_bytes_per_layer(
    configs: Sequence[ArchConfig] | ConfigBatch,
    space: SearchSpace,
    *,
    bytes_per_element: int = FP32_BYTES,
) -> tuple[list[str], np.ndarray]:
    """Activation bytes alive while each layer runs (inference, batch 1), as counted in this
    module's docstring; the row maximum is :func:`peak_memory_bytes`.

    Shapes: N configs (a list or a :class:`ConfigBatch`) → ``(names, [N, L])`` int64 bytes;
    inactive block slots are 0; a block's ``se`` column exists only where the space's stage has
    SE.

    Raises:
        ConfigError: for the first config that is not valid in ``space``, or when
            ``bytes_per_element`` is not 1, 2 or 4.

    Reference: MCUNet, arXiv 2007.10319, Sec. 3 (TinyEngine, Sec. 3.2); MCUNetV2,
    arXiv 2110.15352 (per-block peak memory).
    """
    bytes_per_element = _check_bytes("bytes_per_element", bytes_per_element)
    names, elements = _alive_elements(SubnetShapes.from_configs(configs, space))
    return names, elements * bytes_per_element


def peak_elements(shapes: SubnetShapes) -> np.ndarray:
    """Peak alive activation elements per config, ``[N]`` int64 (× bytes per element = bytes):
    the row maximum of :func:`activation_bytes_per_layer`'s elements, without building the
    per-layer table."""
    before, after = _fixed_elements(shapes)
    peak = np.max([c for _, c in before + after], axis=0)
    for elements in _block_elements(shapes).values():
        peak = np.maximum(peak, elements.max(axis=1))
    return peak.astype(np.int64)


def peak_memory_bytes(
    configs: Sequence[ArchConfig] | ConfigBatch,
    space: SearchSpace,
    *,
    bytes_per_element: int = FP32_BYTES,
) -> np.ndarray:
    """Peak activation memory of each config's subnet: inference, batch 1, layer by layer with
    in-place depthwise convolution (see the module docstring for exactly what is alive).

    ``bytes_per_element``: 4 for fp32, 2 for fp16, 1 for int8.

    Shapes: N configs (a list or a :class:`ConfigBatch`) → ``[N]`` int64 (bytes).

    Raises:
        ConfigError: for the first config that is not valid in ``space``, or when
            ``bytes_per_element`` is not 1, 2 or 4 (naming the value and the choices).

    Reference: MCUNet (Lin et al., NeurIPS'20, arXiv 2007.10319), Sec. 3; in-place depthwise:
    TinyEngine (ibid., Sec. 3.2); MCUNetV2 (arXiv 2110.15352).
    """
    bytes_per_element = _check_bytes("bytes_per_element", bytes_per_element)
    return peak_elements(SubnetShapes.from_configs(configs, space)) * bytes_per_element


def model_size_bytes(
    configs: Sequence[ArchConfig] | ConfigBatch,
    space: SearchSpace,
    *,
    bytes_per_weight: int = FP32_BYTES,
) -> np.ndarray:
    """Model size (flash) of each config's subnet: :func:`~supernet.cost.macs.params` ×
    ``bytes_per_weight`` (4 for fp32, 1 for int8).

    Shapes: N configs (a list or a :class:`ConfigBatch`) → ``[N]`` int64 (bytes).

    Raises:
        ConfigError: for the first config that is not valid in ``space``, or when
            ``bytes_per_weight`` is not 1, 2 or 4.

    Reference: MCUNet, arXiv 2007.10319, Sec. 3 (flash holds the weights).
    """
    bytes_per_weight = _check_bytes("bytes_per_weight", bytes_per_weight)
    return SubnetShapes.from_configs(configs, space).params() * bytes_per_weight
