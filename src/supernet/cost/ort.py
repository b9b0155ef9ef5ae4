"""A module as an onnxruntime session, for latency measurement.

Export uses ``torch.onnx.export(..., dynamo=False)``, the TorchScript-based exporter: in torch
2.13 it needs nothing beyond ``onnx``, exports a block in ~30 ms (the ``dynamo=True`` exporter
needs ``onnxscript`` and takes ~1 s per module, too slow for the hundreds of blocks of a lookup
table) and writes the same graph for the same module every time. Its deprecation warning is
silenced here and only here; when it is removed, switch to ``dynamo=True``.

Sessions run sequentially on ``threads`` intra-op threads and one inter-op thread, with all graph
optimizations, on the CPU execution provider.
"""

from __future__ import annotations

import io
import logging
import warnings
from typing import TYPE_CHECKING

import torch
from torch import nn

from supernet.errors import ConfigError

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["OPSET", "export_onnx", "make_session"]

logger = logging.getLogger(__name__)

OPSET = 17
"""ONNX opset of exported modules (Hardswish and HardSigmoid are native ops from opset 14)."""


def export_onnx(module: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """Serialized ONNX model of ``module`` in eval mode for a fixed input shape.

    Shapes: ``input_shape`` is ``(B, C, H, W)``; the graph input is ``"input"``, the output
    ``"output"``; shapes are static.

    Raises:
        ConfigError: the module cannot be exported (the exporter's message is chained).
    """
    was_training = module.training
    module.eval()
    x = torch.zeros(input_shape)
    buf = io.BytesIO()
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
                input_names=["input"],
                output_names=["output"],
                do_constant_folding=True,
            )
    except Exception as exc:  # the exporter raises many types; name the module and chain them
        raise ConfigError(f"could not export {type(module).__name__} to ONNX: {exc}") from exc
    finally:
        module.train(was_training)
    return buf.getvalue()


def make_session(model: bytes, *, threads: int) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session for a serialized model.

    Args:
        model: ONNX bytes (from :func:`export_onnx`).
        threads: intra-op threads (inter-op is 1, execution sequential).

    Raises:
        ConfigError: onnxruntime is not installed, or ``threads`` < 1.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConfigError("runtime 'onnxruntime' needs `pip install onnxruntime`") from exc
    if threads < 1:
        raise ConfigError(f"threads = {threads} must be an integer >= 1")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
