"""Latency lookup-table keys: which distinct stem, block and head shapes a subnet is made of.

A key is readable text naming everything a part's latency depends on (``hw``: input
feature-map height = width)::

    stem hw=28 in=1 out=16
    mbconv hw=14 in=16 out=16 k=5 e=4 s=2 se=0 act=relu
    head hw=4 in=64 expand=384 mix=512 classes=10

Reference: ProxylessNAS (Cai, Zhu, Han; ICLR'19; arXiv 1812.00332), Sec. 3.3 (latency as a sum
of per-block table entries); Once-for-All (arXiv 1908.09791), Sec. 3.4.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from supernet.nn import OFAMobileNetV3
from supernet.space import ArchConfig, SearchSpace

__all__ = [
    "SlotSpec",
    "block_key",
    "config_keys",
    "conv_out_size",
    "feature_sizes",
    "head_key",
    "slot_specs",
    "stem_key",
]


@dataclass(frozen=True)
class SlotSpec:
    """The fixed part of one elastic block slot: what a lookup key needs besides k, e and hw."""

    in_channels: int
    out_channels: int
    stride: int
    act: str
    use_se: bool
    stage: int
    position: int


@functools.lru_cache(maxsize=8)
def slot_specs(space: SearchSpace) -> tuple[SlotSpec, ...]:
    """Channels, stride, activation and SE of every block slot, read off the supernet's blocks
    (so the table follows :class:`OFAMobileNetV3`'s wiring, not a copy of it)."""
    with torch.random.fork_rng(devices=[]):
        net = OFAMobileNetV3(space)
    stage_of = [(s, p) for s, st in enumerate(space.stages) for p in range(st.max_depth)]
    return tuple(
        SlotSpec(b.in_channels, b.out_channels, b.stride, b.act_name, b.se is not None, s, p)
        for b, (s, p) in zip(net.blocks, stage_of, strict=True)
    )


def conv_out_size(size: int, stride: int) -> int:
    """Output height of a ``ConvBNAct`` with odd kernel and padding ``k // 2``: ``ceil(H / s)``."""
    return -(-size // stride)


def feature_sizes(space: SearchSpace, resolution: int) -> tuple[int, list[int], int]:
    """Input feature-map sizes: of the first block, of every block slot, and of the head."""
    hw = conv_out_size(resolution, space.stem_stride)
    slots = []
    for spec in slot_specs(space):
        slots.append(hw)
        hw = conv_out_size(hw, spec.stride)
    return conv_out_size(resolution, space.stem_stride), slots, hw


def stem_key(space: SearchSpace, resolution: int) -> str:
    """Key of the stem conv + first block at input ``resolution``."""
    return f"stem hw={resolution} in={space.input_channels} out={space.first_block_width}"


def block_key(spec: SlotSpec, hw: int, kernel_size: int, expand_ratio: int) -> str:
    """Key of one MBConv block with input ``hw x hw``."""
    return (
        f"mbconv hw={hw} in={spec.in_channels} out={spec.out_channels} k={kernel_size} "
        f"e={expand_ratio} s={spec.stride} se={int(spec.use_se)} act={spec.act}"
    )


def head_key(space: SearchSpace, hw: int) -> str:
    """Key of final expand + pool + feature mix + classifier with input ``hw x hw``."""
    return (
        f"head hw={hw} in={space.stages[-1].width} expand={space.final_expand_width} "
        f"mix={space.feature_mix_width} classes={space.num_classes}"
    )


def config_keys(space: SearchSpace, config: ArchConfig) -> list[str]:
    """Keys a config's latency is summed over: stem, active blocks in order, head."""
    _, slot_hw, head_hw = feature_sizes(space, config.resolution)
    specs = slot_specs(space)
    keys = [stem_key(space, config.resolution)]
    for i in config.active_blocks(space.stage_max_depths):
        keys.append(block_key(specs[i], slot_hw[i], config.kernel_size[i], config.expand_ratio[i]))
    return [*keys, head_key(space, head_hw)]
