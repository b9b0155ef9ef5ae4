"""Compression of extracted subnets: Deep Compression (pruning, weight sharing, Huffman coding
into a ``subnet.dc`` file), AMC channel pruning and HAQ mixed precision, all on one
:class:`~supernet.compress.context.CompressContext` (a run's subnet, its data, one fine-tuning
recipe).

Reference: Han et al., ICLR'16 (arXiv 1510.00149); He et al., ECCV'18 (arXiv 1802.03494); Wang
et al., CVPR'19 (arXiv 1811.08886).
"""

from supernet.compress.context import CompressContext, load_context, rebuild_subnet, resolve_subnet
from supernet.compress.dcfile import DC_FILE, load_dc, save_dc
from supernet.compress.deep_compression import run_deep_compression

METHODS = ("deep-compression", "amc", "haq")
"""Names of the compression methods (`supernet compress --method`)."""

__all__ = [
    "DC_FILE",
    "METHODS",
    "CompressContext",
    "load_context",
    "load_dc",
    "rebuild_subnet",
    "resolve_subnet",
    "run_deep_compression",
    "save_dc",
]
