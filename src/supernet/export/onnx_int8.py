"""An int8 subnet as ONNX in QDQ form (QuantizeLinear/DequantizeLinear around each op), quantized by
onnxruntime's static quantizer.

The BN-folded float32 subnet (:attr:`QuantizedSubnet.float_model`) is exported with
:func:`~supernet.export.onnx.export_onnx` and quantized by ``onnxruntime.quantization.
quantize_static`` with the same scheme as the ``.tflite``: int8 weights per output channel,
symmetric; int8 activations per tensor, asymmetric, min/max calibrated on the same training
images. onnxruntime calibrates its own ranges, so its int8 logits are close to, not equal to, those
of the PT2E model; :func:`int8_onnx_logits` runs the file to check them.

Reference: ONNX QDQ format (onnxruntime docs, "Quantize ONNX models"); Krishnamoorthi (arXiv
1806.08342), Sec. 2.2.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from supernet.errors import ConfigError, ExportError
from supernet.export.onnx import INPUT_NAME, export_onnx, make_session
from supernet.quant import QuantizedSubnet

__all__ = ["export_int8_onnx", "int8_onnx_logits"]


def export_int8_onnx(
    quantized: QuantizedSubnet, calib_batches: Iterable[torch.Tensor], *, max_images: int = 1000
) -> bytes:
    """int8 QDQ ONNX bytes of ``quantized``'s float subnet, calibrated on ``calib_batches``.

    Shapes: batches float ``[B, C, R, R]`` (or ``(x, y)`` pairs) at the subnet's resolution; the
    ONNX graph takes ``"input"`` float ``[B, C, R, R]`` (dynamic batch) and returns ``"output"``
    float logits ``[B, num_classes]`` (quantize/dequantize inside).

    Raises:
        ConfigError: no calibration images.
        ExportError: onnxruntime's quantizer fails.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    images = []
    seen = 0
    for batch in calib_batches:
        x = batch[0] if isinstance(batch, tuple | list) else batch
        x = x.detach().to("cpu", torch.float32).numpy()[: max_images - seen]
        images.extend(x[i : i + 1] for i in range(len(x)))
        seen += len(x)
        if seen >= max_images:
            break
    if not images:
        raise ConfigError("export_int8_onnx needs at least one calibration image, got none")

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._items = iter(images)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self._items, None)
            return None if item is None else {INPUT_NAME: item}

    float_bytes = export_onnx(quantized.float_model, quantized.input_shape, dynamic_batch=True)
    with tempfile.TemporaryDirectory(prefix="supernet-int8-onnx-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(float_bytes)
        try:
            quantize_static(
                str(src),
                str(dst),
                _Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
            )
        except Exception as exc:  # onnxruntime raises many types; keep its message
            raise ExportError(f"onnxruntime could not quantize the subnet: {exc}") from exc
        return dst.read_bytes()


def int8_onnx_logits(onnx_bytes: bytes, images: torch.Tensor) -> np.ndarray:
    """Logits of an int8 ONNX file on ``images`` (onnxruntime, 1 thread).

    Shapes: ``[N, C, R, R]`` float → ``[N, num_classes]``.

    Raises:
        ExportError: onnxruntime cannot run the file on these images.
    """
    session = make_session(onnx_bytes, threads=1)
    try:
        return session.run(None, {INPUT_NAME: images.detach().cpu().float().numpy()})[0]
    except Exception as exc:  # onnxruntime's pybind errors have no common public base
        raise ExportError(f"onnxruntime cannot run the int8 ONNX subnet: {exc}") from exc
