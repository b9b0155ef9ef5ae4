"""supernet: train one weight-sharing supernet once (Once-for-All progressive shrinking), specialize
subnets per device, adapt them on the device (TinyTL).

Public API re-exports only; see the subpackages for details.
"""

from supernet.errors import (
    CheckpointError,
    ConfigError,
    DataNotFoundError,
    ExportError,
    LatencyTableError,
    RunDirError,
    SearchError,
    SupernetError,
)
from supernet.space import ArchConfig, SearchSpace, get_space, list_spaces
from supernet.version import __version__

__all__ = [
    "ArchConfig",
    "CheckpointError",
    "ConfigError",
    "DataNotFoundError",
    "ExportError",
    "LatencyTableError",
    "RunDirError",
    "SearchError",
    "SearchSpace",
    "SupernetError",
    "__version__",
    "get_space",
    "list_spaces",
]
