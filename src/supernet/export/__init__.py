"""A chosen subnet as deployable files (ONNX, TorchScript, ``subnet.json``), checked against
PyTorch with onnxruntime; the ONNX conversion that latency tables time; and, for
microcontrollers, the int8 ``.tflite`` run in TensorFlow Lite Micro and the int8 QDQ ONNX."""

from supernet.export.mcu import (
    INT8_ONNX_FILE,
    MAX_DROP_POINTS,
    QUANT_FILE,
    TFLITE_FILE,
    McuExport,
    export_mcu_subnet,
    mcu_footprint,
)
from supernet.export.onnx import INPUT_NAME, OPSET, OUTPUT_NAME, export_onnx, make_session
from supernet.export.onnx_int8 import export_int8_onnx, int8_onnx_logits
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
from supernet.export.tflite import (
    TfliteOperator,
    export_tflite,
    float_operators,
    strip_tensor_names,
    tflite_operators,
)
from supernet.export.tflm import ARENA_LIMIT_BYTES, TflmRun, run_tflm

__all__ = [
    "ARENA_LIMIT_BYTES",
    "CHECK_BATCH_SIZE",
    "FORMAT_VERSION",
    "INPUT_NAME",
    "INT8_ONNX_FILE",
    "MAX_DROP_POINTS",
    "METADATA_FILE",
    "ONNX_FILE",
    "OPSET",
    "OUTPUT_NAME",
    "QUANT_FILE",
    "TFLITE_FILE",
    "TORCHSCRIPT_FILE",
    "ExportResult",
    "McuExport",
    "TfliteOperator",
    "TflmRun",
    "export_int8_onnx",
    "export_mcu_subnet",
    "export_onnx",
    "export_subnet",
    "export_tflite",
    "float_operators",
    "int8_onnx_logits",
    "load_exported",
    "make_session",
    "mcu_footprint",
    "run_tflm",
    "strip_tensor_names",
    "tflite_operators",
]
