"""Helpers for the search tests: a space small enough to enumerate (2,048 configs), objectives."""

from __future__ import annotations

import itertools

import numpy as np

from supernet.cost import macs
from supernet.space import ConfigBatch, SearchSpace, StageSpec, encode_batch, encoding_size


def enumerable_space() -> SearchSpace:
    """2 resolutions × 2 kernels and 2 expand ratios in each of 4 slots × 2 depths in 2 stages."""
    return SearchSpace(
        name="search-tiny",
        input_channels=1,
        num_classes=10,
        resolutions=(16, 20),
        kernel_sizes=(3, 5),
        expand_ratios=(3, 6),
        depths=(1, 2),
        stages=(StageSpec(8, 2, 2, "relu", False), StageSpec(16, 2, 1, "h_swish", True)),
        stem_width=8,
        stem_stride=2,
        first_block_width=8,
        final_expand_width=32,
        feature_mix_width=64,
    )


def every_config(space: SearchSpace) -> ConfigBatch:
    choices = [len(space.resolutions)] + [len(space.kernel_sizes)] * space.num_blocks
    choices += [len(space.expand_ratios)] * space.num_blocks + [
        len(space.depths)
    ] * space.num_stages
    indices = np.array(list(itertools.product(*(range(c) for c in choices))))
    return ConfigBatch.from_choice_indices(indices, space)


def linear_score(space: SearchSpace, seed: int, bias: float = 0.0):
    """A random linear function of the Once-for-All encoding (a stand-in accuracy predictor);
    a positive ``bias`` favours deeper subnets, as accuracy does."""
    weights = np.random.default_rng(seed).normal(size=encoding_size(space)) + bias
    return lambda batch: encode_batch(batch, space) @ weights


def macs_of(space: SearchSpace):
    return lambda batch: macs(batch, space).astype(np.float64)
