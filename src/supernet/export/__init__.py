"""A chosen subnet as deployable files (ONNX, TorchScript, ``subnet.json``), checked against
PyTorch with onnxruntime; and the ONNX conversion that latency tables time."""

from supernet.export.onnx import INPUT_NAME, OPSET, OUTPUT_NAME, export_onnx, make_session
from supernet.export.subnet import (
    CHECK_BATCH_SIZE,
    FORMAT_VERSION,
    METADATA_FILE,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    ExportResult,
    export_subnet,
    load_exported,
)

__all__ = [
    "CHECK_BATCH_SIZE",
    "FORMAT_VERSION",
    "INPUT_NAME",
    "METADATA_FILE",
    "ONNX_FILE",
    "OPSET",
    "OUTPUT_NAME",
    "TORCHSCRIPT_FILE",
    "ExportResult",
    "export_onnx",
    "export_subnet",
    "load_exported",
    "make_session",
]
