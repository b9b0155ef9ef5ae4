"""The optional MCU stack (``pip install -e ".[mcu]"``), imported on demand with an install hint.

Which stack and why (measured on this project's 2-core VM, torch 2.13.0+cpu, 2026-12-07):

- **litert-torch 0.10** (Google's PyTorch → LiteRT converter, formerly ai-edge-torch) converts a
  PT2E-quantized ``torch.export`` program straight to an int8 ``.tflite`` flatbuffer, keeping the
  scales and zero points that PyTorch computed. Its ``PT2EQuantizer`` (built on torchao's PT2E
  observers: per-channel symmetric int8 weights, per-tensor asymmetric int8 activations with a
  histogram observer; ``FusedMovingAvgObsFakeQuantize`` for QAT) is the quantizer the converter
  is tested with, so the int8 model PyTorch runs and the ``.tflite`` share one set of
  quantization parameters. It is the only converter on PyPI that resolves beside torch 2.13 (0.9.x
  needs torch < 2.13; onnx2tf needs TensorFlow). It pulls jax, transformers and litert-converter
  (~1.5 GB installed, 3 min 2 s for ``pip install litert-torch tflite-micro ai-edge-litert`` here).
- **tflite-micro** (TensorFlow Lite Micro's Python interpreter): the runtime MCUs run, with a
  recording allocator that reports the tensor arena's bytes.
- **onnxruntime.quantization** (already a core dependency) writes the int8 QDQ ONNX file.

torchao's generic XNNPACK quantizer was not chosen: its graphs are not what the LiteRT converter
lowers to TFLite int8 kernels. Importing the stack costs ~30-45 s of CPU (jax, transformers), so
every import happens inside the function that needs it, and nothing here runs on ``import
supernet``.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from supernet.errors import MissingExtraError

__all__ = ["INSTALL_HINT", "MCU_MODULES", "mcu_extra_available", "require"]

INSTALL_HINT = 'pip install -e ".[mcu]"'
"""The command that installs the MCU extra (litert-torch, ai-edge-litert, tflite-micro)."""

MCU_MODULES = {
    "litert_torch": "litert-torch",
    "torchao": "torchao",
    "tflite_micro": "tflite-micro",
}
"""Importable module → PyPI package of the MCU extra."""


def require(module: str) -> ModuleType:
    """Import ``module`` (a module of the MCU extra, or a submodule of one).

    Raises:
        MissingExtraError: it is not installed (or fails to import); the message names the
            package and :data:`INSTALL_HINT`.
    """
    top = module.split(".")[0]
    package = MCU_MODULES.get(top, top)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is not importable ({exc}); it comes with the MCU extra "
            f"(package {package}): {INSTALL_HINT}"
        ) from exc


def mcu_extra_available() -> bool:
    """True when every module of :data:`MCU_MODULES` can be found (without importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in MCU_MODULES)
