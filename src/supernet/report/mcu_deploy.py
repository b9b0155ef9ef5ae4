"""The int8 step of specialization for microcontrollers (devices with ``int8: true``).

After the search has picked a subnet under the device's modelled int8 SRAM / Flash budgets and
the subnet was extracted and BN re-calibrated, :func:`deploy_int8` quantizes it (PTQ on
training images; QAT when int8 loses more than ``max_drop`` points), exports ``subnet.tflite``
and the int8 ONNX (QDQ), runs the ``.tflite`` in TensorFlow Lite Micro on the test images and
checks each budget against what was *measured*: the TFLM tensor arena (SRAM) and the ``.tflite``
size (Flash). :func:`tinynas_advice` says which space TinyNAS picks when the run's space has no
subnet that fits the device.

Reference: MCUNet (Lin et al., NeurIPS'20, arXiv 2007.10319), Sec. 3.1 (TinyNAS: choose the
space for the budget first), Sec. 4 (int8 deployment, SRAM and Flash budgets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from supernet.cost import DeviceSpec, block_list_from_config, mcu_cost
from supernet.cost.mcu import PLANNERS
from supernet.errors import SearchError
from supernet.space import ArchConfig, SearchSpace

__all__ = [
    "MCU_ROW_KEYS",
    "McuDeployment",
    "deploy_int8",
    "deploy_run_subnet",
    "mcu_row",
    "measured_meets",
    "tinynas_advice",
]

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]

MCU_ROW_KEYS = (
    "int8_method", "fp32_test_acc", "int8_test_acc", "tflm_test_acc", "tflm_images",
    "tflm_vs_int8_agreement", "sram_naive_bytes", "sram_tinyengine_bytes", "sram_tflm_bytes",
    "tflm_arena_bytes", "tflm_arena_head_bytes", "flash_model_bytes", "tflite_bytes",
)  # fmt: skip
"""Columns an int8 device adds to ``specialize.csv`` (empty for the other devices)."""

QUICK_PRESET = "fashion-mnist-quick"
MCU_PRESETS = {"mbv3-tiny-w0.5-r32": "fashion-mnist-mcu-quick"}
"""Training presets of TinyNAS spaces (space → preset); any other space trains with the quick
preset and ``--set space=NAME``."""


@dataclass(frozen=True)
class McuDeployment:
    """What one int8 device got: accuracies in %, bytes throughout.

    Attributes:
        method: ``ptq`` or ``qat`` (the int8 model kept).
        fp32_accuracy, int8_accuracy: test accuracy of the fp32 subnet and the PyTorch int8
            model, on ``test_images`` images.
        tflm_accuracy: of TFLM's outputs on ``tflm_images`` test images.
        tflm_vs_int8_agreement: top-1 agreement (%) of TFLM with the PyTorch int8 model.
        sram_bytes: modelled int8 SRAM per planner (``naive``, ``tflm``, ``tinyengine``).
        arena_bytes: TFLM tensor arena measured (activations, scratch and persistent data).
        arena_head_bytes: its planned part (activations and scratch: what ``tflm`` models).
        flash_bytes: modelled int8 Flash. tflite_bytes: the ``.tflite`` file's size.
        meets: each int8 budget checked on the measured figure (arena, file size).
        tflite_path, onnx_path: the exported files.
    """

    method: str
    fp32_accuracy: float
    int8_accuracy: float
    test_images: int
    tflm_accuracy: float
    tflm_images: int
    tflm_vs_int8_agreement: float
    sram_bytes: dict[str, int]
    arena_bytes: int
    arena_head_bytes: int
    flash_bytes: int
    tflite_bytes: int
    meets: dict[str, bool]
    tflite_path: Path
    onnx_path: Path

    def row(self) -> dict[str, Any]:
        """The :data:`MCU_ROW_KEYS` columns."""
        return {
            "int8_method": self.method,
            "fp32_test_acc": round(self.fp32_accuracy, 2),
            "int8_test_acc": round(self.int8_accuracy, 2),
            "tflm_test_acc": round(self.tflm_accuracy, 2),
            "tflm_images": self.tflm_images,
            "tflm_vs_int8_agreement": round(self.tflm_vs_int8_agreement, 2),
            **{f"sram_{p}_bytes": self.sram_bytes[p] for p in ("naive", "tinyengine", "tflm")},
            "tflm_arena_bytes": self.arena_bytes,
            "tflm_arena_head_bytes": self.arena_head_bytes,
            "flash_model_bytes": self.flash_bytes,
            "tflite_bytes": self.tflite_bytes,
        }


def mcu_row(deployment: McuDeployment | None) -> dict[str, Any]:
    """:meth:`McuDeployment.row`, or the same keys empty for a device that is not int8."""
    return deployment.row() if deployment is not None else dict.fromkeys(MCU_ROW_KEYS, "")


def measured_meets(
    constraints: dict[str, float], arena_bytes: int, tflite_bytes: int
) -> dict[str, bool]:
    """Whether the measured SRAM (the whole TFLM arena, bytes) and Flash (the ``.tflite`` size,
    bytes) meet ``max_sram_bytes`` / ``max_flash_bytes``; only the budgets the device sets."""
    measured = {"max_sram_bytes": arena_bytes, "max_flash_bytes": tflite_bytes}
    return {k: bool(measured[k] <= v) for k, v in constraints.items() if k in measured}


def deploy_int8(
    subnet: torch.nn.Module,
    config: ArchConfig,
    space: SearchSpace,
    spec: DeviceSpec,
    out_dir: Path,
    *,
    calib_batches: Sequence[torch.Tensor],
    test_batches: Batches,
    qat_batches: Batches | None = None,
    qat_steps: int = 0,
    tflm_images: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> McuDeployment:
    """Quantize, export and run in TFLM the chosen subnet of an int8 device; check its budgets.

    Writes ``subnet.tflite``, ``subnet.int8.onnx`` and ``quant.json`` into ``out_dir``
    (:func:`supernet.export.export_mcu_subnet`: PTQ, QAT fallback beyond its 0.5-point drop).

    Shapes: ``calib_batches`` float ``[B, C, R, R]``; ``test_batches`` / ``qat_batches``
    ``(x float [B, C, R, R], y int64 [B])``, at the subnet's resolution ``R``, normalized.

    Raises:
        MissingExtraError: the MCU extra is not installed (install hint in the message).
        ExportError: conversion fails, or TFLM lacks a kernel for an operator (named).
        ConfigError: empty test batches or bad counts.

    Reference: MCUNet, arXiv 2007.10319, Sec. 4; TFLM (arXiv 2010.08678), Sec. 4.4.
    """
    from supernet.export import export_mcu_subnet

    exported = export_mcu_subnet(
        subnet, out_dir, calib_batches=calib_batches, test_batches=test_batches,
        qat_batches=qat_batches, qat_steps=qat_steps, tflm_images=tflm_images,
        metadata=metadata,
    )  # fmt: skip
    blocks = block_list_from_config(config, space)
    sram = {p: mcu_cost(blocks, p).sram_bytes for p in PLANNERS}
    acc, tflite = exported.accuracy, exported.report["tflite"]
    return McuDeployment(
        method=exported.report["method"],
        fp32_accuracy=acc.fp32_accuracy,
        int8_accuracy=acc.int8_accuracy,
        test_images=acc.images,
        tflm_accuracy=float(tflite["tflm_accuracy"]),
        tflm_images=exported.tflm_images,
        tflm_vs_int8_agreement=exported.tflm_vs_int8_agreement,
        sram_bytes=sram,
        arena_bytes=exported.arena_bytes,
        arena_head_bytes=int(tflite["arena_head_bytes"]),
        flash_bytes=mcu_cost(blocks, spec.planner).flash_bytes,
        tflite_bytes=exported.tflite_bytes,
        meets=measured_meets(spec.constraints, exported.arena_bytes, exported.tflite_bytes),
        tflite_path=exported.tflite_path,
        onnx_path=exported.onnx_path,
    )


def deploy_run_subnet(
    run: Any,
    subnet: torch.nn.Module,
    config: ArchConfig,
    spec: DeviceSpec,
    out_dir: Path,
    *,
    calib_images: int = 1000,
    qat_steps: int = 300,
    tflm_images: int | None = None,
    seed: int = 0,
    metadata: dict[str, Any] | None = None,
) -> McuDeployment:
    """:func:`deploy_int8` with the images of a loaded run (``supernet.train.LoadedRun``):
    calibration and QAT batches from its training split, test batches from its test split
    (the first ``tflm_images`` of them, all by default), resized to the subnet's resolution.

    Raises:
        As :func:`deploy_int8`.
    """
    from supernet.data import BatchLoader, resize
    from supernet.train import calibration_loader

    res, batch = config.resolution, run.config.eval_batch_size
    calib = [resize(x, res) for x, _ in calibration_loader(run.splits.train, calib_images,
                                                           batch, seed)]  # fmt: skip
    test = BatchLoader(run.splits.test, batch, shuffle=False, augment=False, limit=tflm_images)
    tests = [(resize(x, res), y) for x, y in test]
    qat: list[tuple[torch.Tensor, torch.Tensor]] = []
    if qat_steps:  # one pass over qat_steps batches of training images (fewer if the split is)
        generator = torch.Generator().manual_seed(seed)
        size = run.config.batch_size
        loader = BatchLoader(run.splits.train, size, shuffle=True, augment=False,
                             generator=generator, limit=qat_steps * size)  # fmt: skip
        qat = [(resize(x, res), y) for x, y in loader]
    return deploy_int8(
        subnet, config, run.space, spec, out_dir, calib_batches=calib, test_batches=tests,
        qat_batches=qat[:qat_steps] or None, qat_steps=qat_steps, tflm_images=tflm_images,
        metadata=metadata,
    )  # fmt: skip


def tinynas_advice(spec: DeviceSpec, space: SearchSpace, *, samples: int = 300) -> str:
    """What to train when ``space`` has no subnet within ``spec``'s int8 budgets: the space
    TinyNAS picks for the budget (:func:`supernet.cost.tinynas.rank_spaces`, the device's
    planner) and the command that trains a supernet on it. Empty for a device without int8
    budgets.

    Reference: MCUNet, arXiv 2007.10319, Sec. 3.1.
    """
    from supernet.cost.tinynas import rank_spaces

    sram = spec.constraints.get("max_sram_bytes")
    flash = spec.constraints.get("max_flash_bytes")
    if not spec.int8 or (sram is None and flash is None):
        return ""
    try:
        ranking = rank_spaces(sram or float(2**40), flash or float(2**40), planner=spec.planner,
                              samples=samples)  # fmt: skip
    except SearchError as exc:
        return f"no TinyNAS space fits {spec.name} either: {exc}"
    chosen = ranking.chosen
    preset = MCU_PRESETS.get(chosen)
    command = (
        f"supernet train --preset {preset} --run-dir runs/{preset}"
        if preset
        else f"supernet train --preset {QUICK_PRESET} --set space={chosen} --run-dir runs/{chosen}"
    )
    return (
        f"space {space.name} has no subnet within {spec.name}'s budgets; TinyNAS picks "
        f"{chosen} (mean MACs of fitting subnets {ranking.scores[0].mean_macs / 1e6:.2f} M); "
        f"train it with `{command}`"
    )
