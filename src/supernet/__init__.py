"""supernet: train one weight-sharing supernet once (Once-for-All progressive shrinking), specialize
subnets per device, adapt them on the device (TinyTL).

Public API re-exports only; see the subpackages for details.
"""

__version__ = "0.1.0"

from supernet.errors import (
    CheckpointError,
    ConfigError,
    DataNotFoundError,
    RunDirError,
    SupernetError,
)
from supernet.space import ArchConfig, SearchSpace, get_space, list_spaces

__all__ = [
    "ArchConfig",
    "CheckpointError",
    "ConfigError",
    "DataNotFoundError",
    "RunDirError",
    "SearchSpace",
    "SupernetError",
    "__version__",
    "get_space",
    "list_spaces",
]
