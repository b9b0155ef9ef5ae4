"""What can be searched: arch configs, search spaces and their presets (pure Python + numpy)."""

from supernet.space.config import ArchConfig, describe
from supernet.space.encoding import ENCODING_VERSION, encode, encoding_size
from supernet.space.presets import MBV3_TINY_NOTES, get_space, list_spaces, register_space
from supernet.space.space import SearchSpace, StageSpec, make_divisible

__all__ = [
    "ENCODING_VERSION",
    "MBV3_TINY_NOTES",
    "ArchConfig",
    "SearchSpace",
    "StageSpec",
    "describe",
    "encode",
    "encoding_size",
    "get_space",
    "list_spaces",
    "make_divisible",
    "register_space",
]
