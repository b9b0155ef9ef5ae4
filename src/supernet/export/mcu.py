"""An extracted subnet delivered to a microcontroller: int8 (PTQ, QAT when PTQ loses too much),
``subnet.tflite`` run in TensorFlow Lite Micro, ``subnet.int8.onnx`` (QDQ) and ``quant.json``.

:func:`export_mcu_subnet` is the whole path for one subnet; :func:`mcu_footprint` gives just the
two numbers an MCU memory model is validated against: the measured TFLM arena (SRAM) and the
``.tflite`` size (Flash).

Reference: MCUNet (Lin et al., NeurIPS'20, arXiv 2007.10319), Sec. 2 and 4: an MCU model must
fit the SRAM (activations) and the Flash (weights) budget, in int8.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from supernet import __version__
from supernet.errors import ConfigError
from supernet.export.onnx_int8 import export_int8_onnx, int8_onnx_logits
from supernet.export.subnet import _fsync_directory, _write_atomic
from supernet.export.tflite import export_tflite, float_operators
from supernet.export.tflm import run_tflm
from supernet.quant import (
    Int8Accuracy,
    QuantizedSubnet,
    int8_accuracy,
    quantize_ptq,
    quantize_qat,
    top1_agreement,
)

__all__ = [
    "INT8_ONNX_FILE",
    "MAX_DROP_POINTS",
    "QUANT_FILE",
    "TFLITE_FILE",
    "McuExport",
    "export_mcu_subnet",
    "mcu_footprint",
]

logger = logging.getLogger(__name__)

TFLITE_FILE = "subnet.tflite"
INT8_ONNX_FILE = "subnet.int8.onnx"
QUANT_FILE = "quant.json"
QUANT_FORMAT_VERSION = 1
MAX_DROP_POINTS = 0.5
"""Largest int8 accuracy drop (percentage points) PTQ may have before QAT is tried (issue 23)."""

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class McuExport:
    """What :func:`export_mcu_subnet` wrote and measured.

    Attributes:
        out_dir, tflite_path, onnx_path, quant_path: the directory and its three files.
        quantized: the int8 subnet kept (PTQ, or QAT when it beat PTQ's drop).
        accuracy: fp32 / int8 accuracy (%) of the kept model on the test batches.
        ptq_accuracy: the PTQ model's, also when QAT was kept.
        arena_bytes: TFLM tensor arena used, bytes. tflite_bytes: ``.tflite`` size, bytes.
        tflm_vs_int8_agreement, tflm_vs_fp32_agreement: top-1 agreement (%) of TFLM's outputs
            with the PyTorch int8 model and with fp32, on ``tflm_images`` test images.
        report: the content of ``quant.json``.
    """

    out_dir: Path
    tflite_path: Path
    onnx_path: Path
    quant_path: Path
    quantized: QuantizedSubnet
    accuracy: Int8Accuracy
    ptq_accuracy: Int8Accuracy
    arena_bytes: int
    tflite_bytes: int
    tflm_vs_int8_agreement: float
    tflm_vs_fp32_agreement: float
    tflm_images: int
    report: dict[str, Any]


def mcu_footprint(subnet: nn.Module, calib_batches: Iterable[torch.Tensor]) -> tuple[int, int]:
    """``(arena_bytes, tflite_bytes)`` of ``subnet`` as an int8 ``.tflite`` in TFLM.

    PTQ-quantizes the subnet on ``calib_batches`` (a few images suffice: sizes do not depend on
    the ranges), converts it, runs one image in TensorFlow Lite Micro and returns the arena the
    recording allocator measured (SRAM, bytes) and the file size (Flash, bytes).

    Shapes: batches float ``[B, C, R, R]`` at the subnet's resolution.

    Raises:
        MissingExtraError: the MCU extra is not installed. ExportError: conversion or TFLM fails.
    """
    quantized = quantize_ptq(subnet, calib_batches, max_images=32)
    tflite = export_tflite(quantized)
    run = run_tflm(tflite, torch.zeros(quantized.input_shape))
    return run.arena_bytes, run.tflite_bytes


def export_mcu_subnet(
    subnet: nn.Module,
    out_dir: str | os.PathLike[str],
    *,
    calib_batches: Iterable[torch.Tensor],
    test_batches: Batches,
    calib_images: int = 1000,
    qat_batches: Batches | None = None,
    qat_steps: int = 0,
    max_drop: float = MAX_DROP_POINTS,
    tflm_images: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> McuExport:
    """Quantize ``subnet`` to int8, export ``.tflite`` + int8 ONNX, check both, write quant.json.

    PTQ first; if its test accuracy is more than ``max_drop`` points below fp32 and
    ``qat_steps`` > 0, quantization-aware fine-tuning on ``qat_batches`` follows and the model
    with the smaller drop is kept (``quant.json`` says which: ``method``). The ``.tflite`` runs in
    TensorFlow Lite Micro on the first ``tflm_images`` test images; its top-1 is compared with
    the PyTorch int8 model's and fp32's.

    Shapes: ``calib_batches`` float ``[B, C, R, R]`` (or ``(x, y)``); ``test_batches`` and
    ``qat_batches`` ``(x float [B, C, R, R], y int64 [B])``, all at the subnet's resolution,
    normalized like training.

    Args:
        subnet: the extracted, BN re-calibrated subnet (not modified).
        out_dir: where ``subnet.tflite``, ``subnet.int8.onnx`` and ``quant.json`` go.
        calib_batches: training images for the activation ranges.
        test_batches: labelled test images (accuracy and agreement).
        calib_images: calibration images used at most.
        qat_batches: labelled training batches for QAT (needed when ``qat_steps`` > 0).
        qat_steps: QAT optimizer steps when PTQ misses ``max_drop`` (0: PTQ only).
        max_drop: allowed PTQ drop in percentage points.
        tflm_images: test images run in TFLM (default: all).
        metadata: plain data saved under ``"metadata"`` (e.g. the arch config, the run).

    Raises:
        ConfigError: empty batches, ``qat_steps`` > 0 without ``qat_batches``, a bad count.
        MissingExtraError: the MCU extra is not installed. ExportError: conversion or TFLM fails.
    """
    if qat_steps < 0 or (qat_steps > 0 and not qat_batches):
        raise ConfigError(f"qat_steps = {qat_steps} needs qat_steps >= 0 and, if > 0, qat_batches")
    if tflm_images is not None and tflm_images < 1:
        raise ConfigError(f"tflm_images = {tflm_images} must be >= 1 (or None for all)")
    calib = list(calib_batches)
    tests = list(test_batches)
    if not tests:
        raise ConfigError("export_mcu_subnet needs labelled test batches, got none")
    quantized = ptq = quantize_ptq(subnet, calib, max_images=calib_images)
    accuracy = ptq_accuracy = int8_accuracy(ptq, tests)
    if accuracy.drop > max_drop and qat_steps > 0:
        logger.info("PTQ drops %.2f points > %.2f: QAT for %d steps", accuracy.drop, max_drop,
                    qat_steps)  # fmt: skip
        qat = quantize_qat(subnet, qat_batches or [], steps=qat_steps)
        qat_accuracy = int8_accuracy(qat, tests)
        if qat_accuracy.drop < accuracy.drop:
            quantized, accuracy = qat, qat_accuracy

    tflite = export_tflite(quantized)
    images = torch.cat([x for x, _ in tests])[:tflm_images]
    labels = torch.cat([y for _, y in tests])[:tflm_images]
    run = run_tflm(tflite, images)
    tflm_logits = torch.from_numpy(run.logits)
    own = _chunked(quantized, images)
    fp32 = _chunked(quantized.float_model, images)
    onnx_bytes = export_int8_onnx(quantized, calib, max_images=calib_images)
    onnx_logits = _chunked(lambda x: torch.from_numpy(int8_onnx_logits(onnx_bytes, x)), images)

    def acc(logits: torch.Tensor) -> float:
        return 100.0 * float((logits.argmax(1) == labels).float().mean())

    report: dict[str, Any] = {
        "format_version": QUANT_FORMAT_VERSION,
        "method": quantized.method,
        "calib_images": ptq.calib_images,
        "qat_steps": quantized.qat_steps,
        "max_drop_points": max_drop,
        "test_images": accuracy.images,
        "fp32_accuracy": accuracy.fp32_accuracy,
        "int8_accuracy": accuracy.int8_accuracy,
        "drop_points": accuracy.drop,
        "ptq": ptq_accuracy.as_dict(),
        "tflite": {
            **_file_entry(TFLITE_FILE, tflite),
            "arena_bytes": run.arena_bytes,
            "arena_head_bytes": run.arena_head_bytes,
            "float_ops": float_operators(tflite),
            "tflm_images": len(images),
            "tflm_accuracy": acc(tflm_logits),
            "tflm_vs_int8_agreement": top1_agreement(tflm_logits, own),
            "tflm_vs_fp32_agreement": top1_agreement(tflm_logits, fp32),
        },
        "onnx": {
            **_file_entry(INT8_ONNX_FILE, onnx_bytes),
            "accuracy": acc(onnx_logits),
            "vs_int8_agreement": top1_agreement(onnx_logits, own),
        },
        "versions": _versions(),
        "metadata": metadata or {},
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / TFLITE_FILE, tflite)
    _write_atomic(out / INT8_ONNX_FILE, onnx_bytes)
    text = json.dumps(report, indent=2, allow_nan=False) + "\n"
    _write_atomic(out / QUANT_FILE, text.encode())
    _fsync_directory(out)
    return McuExport(
        out, out / TFLITE_FILE, out / INT8_ONNX_FILE, out / QUANT_FILE, quantized, accuracy,
        ptq_accuracy, run.arena_bytes, run.tflite_bytes, report["tflite"]["tflm_vs_int8_agreement"],
        report["tflite"]["tflm_vs_fp32_agreement"], len(images), report,
    )  # fmt: skip


@torch.no_grad()
def _chunked(model: Any, images: torch.Tensor, chunk: int = 500) -> torch.Tensor:
    """``model(images)`` in chunks (10,000 images at once would hold GBs of activations)."""
    return torch.cat([model(images[i : i + chunk]) for i in range(0, len(images), chunk)])


def _file_entry(name: str, data: bytes) -> dict[str, Any]:
    return {"file": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"supernet": __version__, "torch": torch.__version__}
    for package in ("litert-torch", "tflite-micro", "torchao", "onnxruntime"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out
