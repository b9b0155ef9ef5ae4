"""TinyTL: transfer methods, lite residual modules, memory-efficient autograd, 8-bit frozen weights.

Reference: Cai, Gan, Zhu, Han, "TinyTL: Reduce Memory, Not Parameters for Efficient On-Device
Learning", NeurIPS'20, arXiv 2007.11622.
"""

from supernet.transfer.adapt import (
    Adaptation,
    Candidate,
    adapt_feature_extractor,
    parse_memory,
    prepare_subnet,
    proxy_score,
)
from supernet.transfer.efficient import (
    EfficientAdaptiveAvgPool2d,
    EfficientAvgPool2d,
    EfficientBatchNorm2d,
    EfficientConv2d,
    EfficientGroupNorm,
    EfficientLinear,
    EfficientReLU,
    EfficientReLU6,
    EfficientWSConv2d,
    make_memory_efficient,
)
from supernet.transfer.frozen_bn import FrozenBatchNorm2d, freeze_batch_norm
from supernet.transfer.functions import (
    frozen_batch_norm,
    frozen_conv2d,
    frozen_linear,
    pack_bits,
    packed_relu,
    recomputing_group_norm,
    shape_only_avg_pool2d,
    unpack_bits,
)
from supernet.transfer.lite_residual import (
    LiteResidual,
    LiteResidualConfig,
    LiteResidualMBConv,
    block_input_resolutions,
    insert_lite_residuals,
    lite_residual_kernel_size,
)
from supernet.transfer.methods import (
    METHODS,
    build_transfer_model,
    check_method,
    set_trainable,
    trainable_parameter_names,
)
from supernet.transfer.quantize import (
    QuantizedConv2d,
    QuantizedLinear,
    kmeans_1d,
    quantization_errors,
    quantize_frozen_weights,
)
from supernet.transfer.recipe import (
    TransferConfig,
    TransferReporter,
    TransferResult,
    cosine_factor,
    train_transfer,
)
from supernet.transfer.run import TransferOutcome, TransferRow, plan_jobs, run_transfer
from supernet.transfer.targets import TARGETS, TransferTarget, load_target

__all__ = [
    "METHODS",
    "TARGETS",
    "Adaptation",
    "Candidate",
    "EfficientAdaptiveAvgPool2d",
    "EfficientAvgPool2d",
    "EfficientBatchNorm2d",
    "EfficientConv2d",
    "EfficientGroupNorm",
    "EfficientLinear",
    "EfficientReLU",
    "EfficientReLU6",
    "EfficientWSConv2d",
    "FrozenBatchNorm2d",
    "LiteResidual",
    "LiteResidualConfig",
    "LiteResidualMBConv",
    "QuantizedConv2d",
    "QuantizedLinear",
    "TransferConfig",
    "TransferOutcome",
    "TransferReporter",
    "TransferResult",
    "TransferRow",
    "TransferTarget",
    "adapt_feature_extractor",
    "block_input_resolutions",
    "build_transfer_model",
    "check_method",
    "cosine_factor",
    "freeze_batch_norm",
    "frozen_batch_norm",
    "frozen_conv2d",
    "frozen_linear",
    "insert_lite_residuals",
    "kmeans_1d",
    "lite_residual_kernel_size",
    "load_target",
    "make_memory_efficient",
    "pack_bits",
    "packed_relu",
    "parse_memory",
    "plan_jobs",
    "prepare_subnet",
    "proxy_score",
    "quantization_errors",
    "quantize_frozen_weights",
    "recomputing_group_norm",
    "run_transfer",
    "set_trainable",
    "shape_only_avg_pool2d",
    "train_transfer",
    "trainable_parameter_names",
    "unpack_bits",
]
