"""Run a ``.tflite`` int8 subnet in TensorFlow Lite Micro (TFLM) and measure its tensor arena.

TFLM is the runtime that MCUs run: no OS, no heap, every tensor and kernel buffer placed by its
memory planner in one caller-given byte array, the *tensor arena*. Its Python interpreter (PyPI
``tflite-micro``) runs the same C++ kernels and planner on the host with a recording allocator;
:func:`run_tflm` reads the arena's total (planned activations = "head", plus persistent
allocations = "tail") from it after the first invocation. That total is the SRAM a board must
give the arena: the number the MCU memory model of ``supernet.cost`` is checked against.

The interpreter is created with a generous arena (:data:`ARENA_LIMIT_BYTES`); the reported
figure is what was used, not what was offered.

Reference: David et al., "TensorFlow Lite Micro: Embedded Machine Learning on TinyML Systems"
(MLSys'21, arXiv 2010.08678), Sec. 4.4 (memory planner, arena head/tail); MCUNet (arXiv
2007.10319), Sec. 2 (SRAM holds activations, Flash holds weights).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from supernet.errors import ConfigError, ExportError
from supernet.quant import require

__all__ = ["ARENA_LIMIT_BYTES", "TflmRun", "run_tflm"]

ARENA_LIMIT_BYTES = 16 * 2**20
"""Arena offered to the interpreter (16 MiB); the used bytes are measured, see :class:`TflmRun`."""

_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '([A-Za-z0-9_]+)'")
_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_ARENA_HEAD = re.compile(r"Arena allocation head (\d+) bytes")


@dataclass(frozen=True)
class TflmRun:
    """Logits and memory of a ``.tflite`` subnet run in TensorFlow Lite Micro.

    Attributes:
        logits: float32 ``[N, num_classes]``, the int8 outputs dequantized with the output's
            scale and zero point (argmax equals the int8 argmax).
        arena_bytes: tensor arena used, in bytes (head + tail of the recording allocator).
        arena_head_bytes: the planned, non-persistent part (activation buffers, scratch), bytes.
        tflite_bytes: size of the ``.tflite`` file, in bytes.
    """

    logits: np.ndarray
    arena_bytes: int
    arena_head_bytes: int
    tflite_bytes: int


def run_tflm(tflite: bytes, images: torch.Tensor | np.ndarray) -> TflmRun:
    """Run every image through the ``.tflite`` subnet in TFLM, one at a time (batch 1).

    Images are quantized with the input tensor's scale and zero point (as firmware would do
    with its sensor data), so the result is what the MCU computes.

    Shapes: ``images`` float ``[N >= 1, C, R, R]`` normalized like training, with ``[C, R, R]``
    the file's input shape → logits ``[N, num_classes]``.

    Raises:
        MissingExtraError: tflite-micro is not installed (the message has the install hint).
        ExportError: TFLM has no kernel for one of the file's operators (the message names it),
            or cannot load or run the file.
        ConfigError: ``images`` has the wrong shape.
    """
    runtime = require("tflite_micro.python.tflite_micro.runtime")
    with _captured_stderr() as log:
        try:
            interpreter = runtime.Interpreter.from_bytes(
                bytes(tflite), arena_size=ARENA_LIMIT_BYTES
            )
        except Exception as exc:  # the pybind wrapper raises RuntimeError/ValueError
            raise _load_error(exc, log.read()) from exc
    detail = interpreter.get_input_details(0)
    out_detail = interpreter.get_output_details(0)
    shape = tuple(int(s) for s in detail["shape"])
    x = np.asarray(images.detach().cpu() if isinstance(images, torch.Tensor) else images)
    if x.ndim != 4 or tuple(x.shape[1:]) != shape[1:] or len(x) == 0:
        raise ConfigError(
            f"images must be float [N >= 1, {', '.join(map(str, shape[1:]))}] for this .tflite, "
            f"got {list(x.shape)}"
        )
    q_in = _quantize(x.astype(np.float32), detail)
    out_scale, out_zero = _scale_zero(out_detail)
    logits = []
    for i in range(len(q_in)):
        interpreter.set_input(q_in[i : i + 1], 0)
        try:
            interpreter.invoke()
        except Exception as exc:  # RuntimeError from the kernels
            raise ExportError(f"TensorFlow Lite Micro failed on image {i}: {exc}") from exc
        out = interpreter.get_output(0).astype(np.float32)
        logits.append((out.reshape(1, -1) - out_zero) * out_scale)
    with _captured_stderr() as log:
        interpreter.print_allocations()
    report = log.text
    total, head = _ARENA_TOTAL.search(report), _ARENA_HEAD.search(report)
    if total is None or head is None:
        raise ExportError(f"TensorFlow Lite Micro reported no arena size; it printed: {report!r}")
    return TflmRun(np.concatenate(logits), int(total.group(1)), int(head.group(1)), len(tflite))


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return x
    scale, zero = _scale_zero(detail)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)


def _scale_zero(detail: dict) -> tuple[float, float]:
    params = detail["quantization_parameters"]
    if len(params["scales"]) == 0:
        return 1.0, 0.0
    return float(params["scales"][0]), float(params["zero_points"][0])


def _load_error(exc: BaseException, log: str) -> ExportError:
    missing = _MISSING_OP.search(log) or _MISSING_OP.search(str(exc))
    if missing:
        return ExportError(
            f"TensorFlow Lite Micro has no kernel for operator {missing.group(1)}; the subnet "
            "uses an op that MCU runtimes lack (replace it, or keep it out of the space)"
        )
    detail = " ".join((log.strip() or str(exc)).split())
    return ExportError(f"TensorFlow Lite Micro cannot load the .tflite file: {detail}")


class _Log:
    """What was written to fd 2: ``read()`` inside the ``with``, ``text`` after it."""

    def __init__(self, file: tempfile._TemporaryFileWrapper) -> None:  # type: ignore[type-arg]
        self._file = file
        self.text = ""

    def read(self) -> str:
        if not self._file.closed:
            self._file.seek(0)
            self.text = self._file.read().decode(errors="replace")
        return self.text


@contextlib.contextmanager
def _captured_stderr() -> Iterator[_Log]:
    """Capture what C++ writes to file descriptor 2 (TFLM logs there, not to ``sys.stderr``)."""
    with tempfile.TemporaryFile() as file:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(file.fileno(), 2)
        log = _Log(file)  # type: ignore[arg-type]
        try:
            yield log
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.read()
