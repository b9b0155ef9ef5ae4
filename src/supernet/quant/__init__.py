"""int8 quantization of extracted subnets for microcontrollers: post-training static (PTQ) and
quantization-aware fine-tuning (QAT) with PyTorch 2 export quantization and litert-torch's
quantizer (see :mod:`supernet.quant.backend` for the stack and why), and int8 accuracy beside
float32. The ``.tflite`` / int8 ONNX exports and the TensorFlow Lite Micro run are in
:mod:`supernet.export` (which builds on this package).

Reference: MCUNet (Lin et al., NeurIPS'20, arXiv 2007.10319), Sec. 4; Jacob et al. (CVPR'18,
arXiv 1712.05877).
"""

from supernet.quant.accuracy import Int8Accuracy, int8_accuracy, top1_agreement
from supernet.quant.backend import INSTALL_HINT, mcu_extra_available, require
from supernet.quant.ptq import METHODS, QuantizedSubnet, prepare_float, quantize_ptq, quantize_qat
from supernet.quant.quantizer import make_quantizer

__all__ = [
    "INSTALL_HINT",
    "METHODS",
    "Int8Accuracy",
    "QuantizedSubnet",
    "int8_accuracy",
    "make_quantizer",
    "mcu_extra_available",
    "prepare_float",
    "quantize_ptq",
    "quantize_qat",
    "require",
    "top1_agreement",
]
