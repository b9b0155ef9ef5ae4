"""How a supernet computes: elastic operators, static blocks, the OFA MobileNetV3 supernet."""

from supernet.nn.blocks import (
    NORMS,
    ConvBNAct,
    MBConv,
    MobileNetV3,
    SqueezeExcite,
    WSConv2d,
    fold_batchnorm,
    group_norm_groups,
    make_norm,
    standardize_weight,
)
from supernet.nn.elastic import (
    ElasticBatchNorm2d,
    ElasticDepthwiseConv2d,
    ElasticGroupNorm,
    ElasticMBConv,
    ElasticPointwiseConv2d,
    ElasticSqueezeExcite,
    make_elastic_norm,
    mbconv_mid_channels,
)
from supernet.nn.ofa_mbv3 import OFAMobileNetV3, build_ofa_mbv3
from supernet.nn.registry import create_supernet, list_supernets, register_supernet
from supernet.nn.sorting import banded_channel_order, channel_order, sort_channels

__all__ = [
    "NORMS",
    "ConvBNAct",
    "ElasticBatchNorm2d",
    "ElasticDepthwiseConv2d",
    "ElasticGroupNorm",
    "ElasticMBConv",
    "ElasticPointwiseConv2d",
    "ElasticSqueezeExcite",
    "MBConv",
    "MobileNetV3",
    "OFAMobileNetV3",
    "SqueezeExcite",
    "WSConv2d",
    "banded_channel_order",
    "build_ofa_mbv3",
    "channel_order",
    "create_supernet",
    "fold_batchnorm",
    "group_norm_groups",
    "list_supernets",
    "make_elastic_norm",
    "make_norm",
    "mbconv_mid_channels",
    "register_supernet",
    "sort_channels",
    "standardize_weight",
]
