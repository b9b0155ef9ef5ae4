"""What can be searched: arch configs, search spaces and their presets (pure Python + numpy)."""

from supernet.space.batch import ConfigBatch
from supernet.space.config import ArchConfig, describe
from supernet.space.encoding import ENCODING_VERSION, encode, encode_batch, encoding_size
from supernet.space.family import ConfigList, Space
from supernet.space.operators import crossover_batch, mutate_batch, sample_batch
from supernet.space.presets import (
    MBV3_TINY_NOTES,
    PROXYLESS_TINY_NOTES,
    TINYNAS_RESOLUTIONS,
    TINYNAS_WIDTHS,
    get_space,
    list_spaces,
    register_space,
    tinynas_space,
    tinynas_space_names,
)
from supernet.space.space import SearchSpace, StageSpec, make_divisible

__all__ = [
    "ENCODING_VERSION",
    "MBV3_TINY_NOTES",
    "PROXYLESS_TINY_NOTES",
    "TINYNAS_RESOLUTIONS",
    "TINYNAS_WIDTHS",
    "ArchConfig",
    "ConfigBatch",
    "ConfigList",
    "SearchSpace",
    "Space",
    "StageSpec",
    "crossover_batch",
    "describe",
    "encode",
    "encode_batch",
    "encoding_size",
    "get_space",
    "list_spaces",
    "make_divisible",
    "mutate_batch",
    "register_space",
    "sample_batch",
    "tinynas_space",
    "tinynas_space_names",
]
