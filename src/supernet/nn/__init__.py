"""How a supernet computes: elastic operators, static blocks, the OFA MobileNetV3 supernet."""

from supernet.nn.blocks import ConvBNAct, MBConv, MobileNetV3, SqueezeExcite
from supernet.nn.elastic import (
    ElasticBatchNorm2d,
    ElasticDepthwiseConv2d,
    ElasticMBConv,
    ElasticPointwiseConv2d,
    ElasticSqueezeExcite,
    mbconv_mid_channels,
)
from supernet.nn.ofa_mbv3 import OFAMobileNetV3, build_ofa_mbv3
from supernet.nn.registry import create_supernet, list_supernets, register_supernet
from supernet.nn.sorting import sort_channels

__all__ = [
    "ConvBNAct",
    "ElasticBatchNorm2d",
    "ElasticDepthwiseConv2d",
    "ElasticMBConv",
    "ElasticPointwiseConv2d",
    "ElasticSqueezeExcite",
    "MBConv",
    "MobileNetV3",
    "OFAMobileNetV3",
    "SqueezeExcite",
    "build_ofa_mbv3",
    "create_supernet",
    "list_supernets",
    "mbconv_mid_channels",
    "register_supernet",
    "sort_channels",
]
