"""An int8 subnet as a ``.tflite`` flatbuffer (LiteRT), converted by litert-torch; what is in it.

:func:`export_tflite` lowers the reference-quantized PT2E graph of a
:class:`~supernet.quant.QuantizedSubnet` with litert-torch's converter, which turns each
quantize → op → dequantize pattern into the op's int8 TFLite kernel and stores weights as int8
(per-channel scales), biases as int32. Input and output stay int8 ``[1, C, R, R]`` (NCHW, as in
PyTorch; the converter transposes inside) and ``[1, num_classes]``; their scale and zero point
are in the file, stripped of the tensor names the converter writes (each a module path of ~200
bytes: 60-80 KB of Flash on a 500-KB model, never read by an MCU runtime;
:func:`strip_tensor_names`). :func:`tflite_operators` lists the file's operators with their
tensor types, so a caller can check that no float op remains.

Reference: LiteRT (TensorFlow Lite) flatbuffer schema (``schema.fbs``); MCUNet (arXiv
2007.10319), Sec. 4 (int8 models on MCUs).
"""

from __future__ import annotations

import collections
import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from supernet.errors import ExportError
from supernet.quant import QuantizedSubnet, require

__all__ = [
    "TfliteOperator",
    "export_tflite",
    "float_operators",
    "strip_tensor_names",
    "tflite_operators",
]


@dataclass(frozen=True)
class TfliteOperator:
    """One kind of operator in a ``.tflite`` file.

    Attributes:
        name: the builtin operator (``"CONV_2D"``, ``"HARD_SWISH"``, ...; a custom op's code).
        input_types, output_types: tensor types (``"INT8"``, ``"INT32"``, ``"FLOAT32"``, ...).
        count: how many operators of the file have this name and these types.
    """

    name: str
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    count: int


def export_tflite(quantized: QuantizedSubnet) -> bytes:
    """Convert an int8 subnet to ``.tflite`` bytes with litert-torch (batch 1).

    Shapes: the file's input is int8 ``quantized.input_shape`` = ``[1, C, R, R]``; its output
    int8 ``[1, num_classes]`` logits (dequantize with the output's scale and zero point).

    Raises:
        MissingExtraError: litert-torch is not installed (the message has the install hint).
        ExportError: the converter fails (its message is kept).
    """
    litert_torch = require("litert_torch")
    quant_config = require("litert_torch.quantize.quant_config")
    sample = (torch.zeros(quantized.input_shape),)
    config = quant_config.QuantConfig(pt2e_quantizer=quantized.quantizer)
    with _quiet_progress(), tempfile.TemporaryDirectory(prefix="supernet-tflite-") as tmp:
        path = Path(tmp) / "subnet.tflite"
        try:
            edge = litert_torch.convert(quantized.model, sample, quant_config=config)
            edge.export(str(path))
        except Exception as exc:  # the converter raises many types; keep its message
            raise ExportError(
                f"litert-torch could not convert the int8 subnet: {' '.join(str(exc).split())}"
            ) from exc
        return strip_tensor_names(path.read_bytes())


def strip_tensor_names(tflite: bytes) -> bytes:
    """The same ``.tflite`` model with every tensor's name emptied.

    The converter names each tensor after its module path (``supernet.nn.blocks.MobileNetV3/...``,
    often 200+ bytes); the names are debug information that TFLite and TFLM never read (the
    signature keeps its input/output names), yet they take 10-14% of a small int8 model's file,
    i.e. of its Flash. Operators, buffers and quantization parameters are untouched, so the
    outputs are identical (tested).

    Raises:
        MissingExtraError: ai-edge-litert (its flatbuffer schema) is not installed.
    """
    schema = require("ai_edge_litert.schema_py_generated")
    flatbuffers = require("flatbuffers")
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite, 0))
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            tensor.name = b""
    builder = flatbuffers.Builder(len(tflite))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def tflite_operators(tflite: bytes) -> list[TfliteOperator]:
    """The operators of a ``.tflite`` file's main subgraph, grouped by name and tensor types.

    Raises:
        MissingExtraError: tflite-micro (which ships the schema reader) is not installed.
        ExportError: the bytes are not a ``.tflite`` flatbuffer.
    """
    schema = require("tflite_micro.tensorflow.lite.micro.python.schema_py_generated")
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(tflite), 0))
        graph = model.subgraphs[0]
    except Exception as exc:  # flatbuffers raises struct/index errors on garbage
        raise ExportError(f"not a .tflite flatbuffer ({len(tflite)} bytes): {exc}") from exc
    op_names = _enum_names(schema.BuiltinOperator)
    type_names = _enum_names(schema.TensorType)
    counts: collections.Counter[tuple[str, tuple[str, ...], tuple[str, ...]]] = (
        collections.Counter()
    )
    for op in graph.operators or []:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = op_names.get(builtin, str(builtin))
        if name == "CUSTOM" and code.customCode:
            name = f"CUSTOM:{code.customCode.decode(errors='replace')}"
        ins = tuple(type_names[graph.tensors[i].type] for i in op.inputs if i >= 0)
        outs = tuple(type_names[graph.tensors[i].type] for i in op.outputs if i >= 0)
        counts[(name, ins, outs)] += 1
    return [TfliteOperator(n, i, o, c) for (n, i, o), c in counts.items()]


def float_operators(tflite: bytes) -> list[str]:
    """Names of the operators that compute in float32 (empty for a fully int8 model)."""
    return sorted(
        {op.name for op in tflite_operators(tflite) if "FLOAT32" in op.output_types}
        - {"DEQUANTIZE"}
    )


def _enum_names(enum_class: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_")}


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """Turn off litert-torch's progress lines (library code does not print)."""
    key = "LITERT_TORCH_SHOW_PROGRESS"
    old = os.environ.get(key)
    os.environ[key] = "n"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
