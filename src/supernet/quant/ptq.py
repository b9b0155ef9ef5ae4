"""Static int8 quantization of an extracted subnet: post-training (PTQ) and quantization-aware
fine-tuning (QAT), with PyTorch 2 export quantization (PT2E) and litert-torch's quantizer.

Steps (both methods): copy the subnet to the CPU in eval mode, fold every BatchNorm into its
convolution (:func:`~supernet.nn.fold_batchnorm`), ``torch.export`` it with a dynamic batch axis,
insert observers (PTQ) or fake-quantize modules (QAT) with :func:`~supernet.quant.make_quantizer`,
run the calibration (PTQ) or training (QAT) batches, and convert to a reference-quantized graph
(quantize → dequantize around float ops: PyTorch's simulation of the int8 kernels). The result,
:class:`QuantizedSubnet`, is "the project's own int8 model": it computes logits in PyTorch and is
what :func:`supernet.export.export_tflite` converts to a ``.tflite`` flatbuffer.

The library loads no data: calibration and training batches are arguments.

Reference: Jacob et al., CVPR'18 (arXiv 1712.05877), Sec. 2-3; Krishnamoorthi (arXiv
1806.08342), Sec. 2.2 (per-channel weights), 3.2 (QAT); MCUNet (Lin et al., NeurIPS'20, arXiv
2007.10319), Sec. 4 (int8 on the MCU). PT2E: https://pytorch.org/ao (torchao.quantization.pt2e).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from supernet.errors import ConfigError
from supernet.nn import fold_batchnorm
from supernet.quant.backend import require
from supernet.quant.quantizer import make_quantizer

__all__ = ["METHODS", "QuantizedSubnet", "prepare_float", "quantize_ptq", "quantize_qat"]

logger = logging.getLogger(__name__)

METHODS = ("PTQ", "QAT")
"""Quantization methods: post-training static, quantization-aware fine-tuning."""


@dataclass
class QuantizedSubnet:
    """An int8 subnet as PyTorch runs it (reference-quantized PT2E graph).

    Shapes: ``self(x)`` maps float images ``[B, C, R, R]`` (normalized like training) to float
    logits ``[B, num_classes]`` computed with int8 weights and int8 activations (simulated).

    Attributes:
        model: the converted ``torch.fx.GraphModule`` (quantize/dequantize around each op).
        float_model: the BN-folded float32 subnet it was made from (eval mode, CPU).
        quantizer: the PT2E quantizer used (the LiteRT converter needs it).
        input_shape: ``(1, C, R, R)``, the shape a ``.tflite`` export takes.
        method: ``"PTQ"`` or ``"QAT"``.
        calib_images: images observed for the activation ranges (PTQ) or 0.
        qat_steps: QAT optimizer steps (0 for PTQ).
    """

    model: torch.fx.GraphModule
    float_model: nn.Module
    quantizer: Any
    input_shape: tuple[int, int, int, int]
    method: str
    calib_images: int
    qat_steps: int = 0

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.to("cpu", torch.float32))


def prepare_float(subnet: nn.Module) -> nn.Module:
    """A CPU, eval-mode copy of ``subnet`` with BatchNorm folded into the convolutions.

    Shapes: unchanged. The caller's module is not modified.

    Raises:
        ConfigError: the subnet has a GroupNorm (a TinyTL group-norm subnet normalizes with
            per-image statistics, which no int8 MCU kernel computes; int8 export needs ``norm=bn``).
    """
    model = copy.deepcopy(subnet).to("cpu").eval()
    if any(isinstance(m, nn.GroupNorm) for m in model.modules()):
        raise ConfigError(
            "the subnet uses GroupNorm (norm='gn'); int8 quantization needs a batch-norm subnet "
            "(norm='bn') whose normalization folds into the convolutions"
        )
    return fold_batchnorm(model)


def quantize_ptq(
    subnet: nn.Module, calib_batches: Iterable[torch.Tensor], *, max_images: int | None = None
) -> QuantizedSubnet:
    """Post-training static int8 quantization, calibrated on training images.

    Weights: per output channel, symmetric int8; activations: per tensor, asymmetric int8, ranges
    from a histogram observer over the calibration images.

    Shapes: each calibration batch is float ``[B, C, R, R]``, normalized like training, at the
    subnet's resolution; ``(x, y)`` pairs are accepted too (labels are ignored).

    Args:
        subnet: the extracted subnet (e.g. ``supernet.get_subnet(config)``, BN re-calibrated).
        calib_batches: training images (1,000 are plenty for MobileNet-size nets).
        max_images: stop after this many images (default: all batches).

    Raises:
        ConfigError: no calibration images, a batch of the wrong shape, a group-norm subnet.
        MissingExtraError: the MCU extra is not installed.
    """
    quantize_pt2e = require("torchao.quantization.pt2e.quantize_pt2e")
    model = prepare_float(subnet)
    quantizer = make_quantizer(qat=False)
    seen, shape = 0, None
    prepared = None
    with torch.no_grad():
        for batch in calib_batches:
            x = _images(batch)
            if prepared is None:
                shape = (1, *x.shape[1:])
                prepared = quantize_pt2e.prepare_pt2e(_export(model, x), quantizer)
            x = _check_shape(x, shape)
            if max_images is not None:
                x = x[: max_images - seen]
            prepared(x)
            seen += len(x)
            if max_images is not None and seen >= max_images:
                break
    if prepared is None or seen == 0:
        raise ConfigError("quantize_ptq needs at least one calibration image, got none")
    converted = _to_eval(quantize_pt2e.convert_pt2e(prepared, fold_quantize=False))
    logger.info("PTQ calibrated on %d images", seen)
    return QuantizedSubnet(converted, model, quantizer, shape, "PTQ", seen, 0)


def quantize_qat(
    subnet: nn.Module,
    train_batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    steps: int,
    lr: float = 1e-3,
    momentum: float = 0.9,
    freeze_observers_at: float = 0.7,
) -> QuantizedSubnet:
    """Quantization-aware fine-tuning: train the BN-folded subnet with int8 fake quantization.

    The fake-quantize modules come from the PT2E quantizer (fused moving-average observers, the
    straight-through estimator for rounding); the loss is cross-entropy on the labels, SGD with
    momentum. Observers are frozen after ``freeze_observers_at * steps`` steps so the last steps
    train against fixed scales (Krishnamoorthi, arXiv 1806.08342, Sec. 3.2). The batches are
    cycled when there are fewer than ``steps``.

    Shapes: ``train_batches`` yields ``(x float [B, C, R, R], y int64 [B])``.

    Args:
        subnet: the extracted (BN re-calibrated) subnet; not modified.
        train_batches: labelled training batches at the subnet's resolution.
        steps: optimizer steps (>= 1).
        lr: learning rate (small: the weights are already trained).
        momentum: SGD momentum.
        freeze_observers_at: fraction of the steps after which ranges are fixed, in (0, 1].

    Raises:
        ConfigError: ``steps`` < 1, ``lr`` <= 0, ``freeze_observers_at`` outside (0, 1], no
            batches, or a batch of the wrong shape.
        MissingExtraError: the MCU extra is not installed.

    Reference: Jacob et al. (arXiv 1712.05877), Sec. 3.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps = {steps!r} must be an int >= 1")
    if not lr > 0:
        raise ConfigError(f"lr = {lr!r} must be > 0")
    if not 0 < freeze_observers_at <= 1:
        raise ConfigError(f"freeze_observers_at = {freeze_observers_at!r} must be in (0, 1]")
    quantize_pt2e = require("torchao.quantization.pt2e.quantize_pt2e")
    pt2e = require("torchao.quantization.pt2e")
    model = prepare_float(subnet)
    quantizer = make_quantizer(qat=True)
    batches = list(train_batches)
    if not batches:
        raise ConfigError("quantize_qat needs at least one training batch, got none")
    x0 = _images(batches[0])
    shape = (1, *x0.shape[1:])
    prepared = quantize_pt2e.prepare_qat_pt2e(_export(model, x0), quantizer)
    pt2e.move_exported_model_to_train(prepared)
    params = [p for p in prepared.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum)
    freeze_step = max(1, round(freeze_observers_at * steps))
    for step in range(steps):
        x, y = batches[step % len(batches)]
        x = _check_shape(x.to("cpu", torch.float32), shape)
        loss = nn.functional.cross_entropy(prepared(x), y.to("cpu"))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step + 1 == freeze_step:
            prepared.apply(pt2e.disable_observer)
    pt2e.move_exported_model_to_eval(prepared)
    converted = _to_eval(quantize_pt2e.convert_pt2e(prepared, fold_quantize=False))
    logger.info("QAT: %d steps, last loss %.4f", steps, float(loss))
    return QuantizedSubnet(converted, model, quantizer, shape, "QAT", 0, steps)


def _to_eval(model: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Put an exported graph in eval mode (dropout off; the converter warns otherwise)."""
    require("torchao.quantization.pt2e").move_exported_model_to_eval(model)
    for module in model.modules():  # exported graphs refuse .eval(); the flag is what is read
        module.training = False
    return model


def _images(batch: Any) -> torch.Tensor:
    x = batch[0] if isinstance(batch, tuple | list) else batch
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point() or len(x) == 0:
        got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(
            f"a calibration/training batch must be float [B >= 1, C, R, R], got {got}"
        )
    return x.detach().to("cpu", torch.float32)


def _check_shape(x: torch.Tensor, shape: tuple[int, ...] | None) -> torch.Tensor:
    if shape is not None and tuple(x.shape[1:]) != tuple(shape[1:]):
        raise ConfigError(
            f"batch of shape {list(x.shape)} does not match the first batch's [B, "
            f"{', '.join(map(str, shape[1:]))}]; resize every batch to the subnet's resolution"
        )
    return x


def _export(model: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """``torch.export`` with a dynamic batch axis (calibration batches of any size)."""
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    sample = example[:2] if len(example) >= 2 else example.repeat(2, 1, 1, 1)
    program = torch.export.export(model, (sample,), dynamic_shapes=({0: batch},))
    return program.module()
