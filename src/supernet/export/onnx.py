"""A module as ONNX bytes and as an onnxruntime session: latency tables and exported subnets.

Export uses ``torch.onnx.export(..., dynamo=False)``, the TorchScript-based exporter: in torch
2.13 it needs nothing beyond ``onnx``, exports a block in ~30 ms (the ``dynamo=True`` exporter
needs ``onnxscript`` and takes ~1 s per module, too slow for the hundreds of blocks of a lookup
table) and writes the same graph for the same module every time. Its deprecation warnings are
silenced here and only here; when it is removed, switch to ``dynamo=True``.

Sessions run sequentially on ``threads`` intra-op threads and one inter-op thread, with all graph
optimizations, on the CPU execution provider.

This module sits below :mod:`supernet.cost`: latency lookup tables time the very ONNX graphs that
:func:`supernet.export.export_subnet` ships.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from typing import TYPE_CHECKING

import torch
from torch import nn

from supernet.errors import ConfigError

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["INPUT_NAME", "OPSET", "OUTPUT_NAME", "export_onnx", "make_session"]

logger = logging.getLogger(__name__)

OPSET = 17
"""ONNX opset of exported modules (Hardswish and HardSigmoid are native ops from opset 14)."""

INPUT_NAME = "input"
"""Name of the graph input (images ``[B, C, H, W]``)."""

OUTPUT_NAME = "output"
"""Name of the graph output (the module's output, e.g. logits ``[B, num_classes]``)."""

_BATCH_AXIS = "batch"


def export_onnx(
    module: nn.Module, input_shape: tuple[int, ...], *, dynamic_batch: bool = False
) -> bytes:
    """Serialized ONNX model of ``module`` in eval mode, traced at ``input_shape``.

    The module's train/eval mode is restored afterwards; its weights are not changed.

    Shapes: ``input_shape`` is ``(B, C, H, W)``; the graph input is ``"input"``, the output
    ``"output"``. Shapes are static, except the batch axis (axis 0 of input and output, named
    ``"batch"``) when ``dynamic_batch`` is true.

    Args:
        module: the module to export (traced, so no data-dependent control flow).
        input_shape: shape of the example input ``(B, C, H, W)`` (zeros are traced).
        dynamic_batch: let the graph take any batch size (``dynamic_axes`` of the exporter).

    Raises:
        ConfigError: the module cannot be exported (the exporter's message is chained).

    Reference: ONNX operator set 17; ``torch.onnx.export`` (TorchScript-based exporter).
    """
    was_training = module.training
    module.eval()
    x = torch.zeros(input_shape)
    buf = io.BytesIO()
    dynamic_axes = (
        {INPUT_NAME: {0: _BATCH_AXIS}, OUTPUT_NAME: {0: _BATCH_AXIS}} if dynamic_batch else None
    )
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", message=".*feature will be removed.*")
            torch.onnx.export(
                module,
                (x,),
                buf,
                dynamo=False,
                opset_version=OPSET,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
    except Exception as exc:  # the exporter raises many types; name the module and chain them
        raise ConfigError(f"could not export {type(module).__name__} to ONNX: {exc}") from exc
    finally:
        module.train(was_training)
    return buf.getvalue()


def make_session(
    model: bytes | str | os.PathLike[str], *, threads: int
) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session for a serialized model or an ``.onnx`` file.

    Args:
        model: ONNX bytes (from :func:`export_onnx`) or the path of an ``.onnx`` file.
        threads: intra-op threads (inter-op is 1, execution sequential).

    Raises:
        ConfigError: onnxruntime is not installed, or ``threads`` < 1.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConfigError("runtime 'onnxruntime' needs `pip install onnxruntime`") from exc
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads = {threads!r} must be an integer >= 1")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else os.fspath(model)
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
