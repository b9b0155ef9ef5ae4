"""TFLM's persistent arena part (cost/tflm_persistent.py): the byte formula on hand-counted toy
graphs, the converted graph litert-torch writes, batched == per network, and measured arenas."""

from __future__ import annotations

import numpy as np
import pytest

from supernet.cost import block_list_from_config, mcu_cost
from supernet.cost.macs import SubnetShapes
from supernet.cost.mcu_batch import sram_bytes
from supernet.cost.mcu_net import BlockList, MBConvSpec
from supernet.cost.tflm_persistent import (
    PERSISTENT_FIXED_BYTES,
    TfliteGraph,
    converted_graph,
    persistent_bytes,
    persistent_of_shapes,
    tflm_persistent_bytes,
)
from supernet.space import ArchConfig, get_space


def test_bytes_of_a_hand_counted_graph():
    # conv (8 channels) -> MEAN -> FC (10 classes); 8 tensors: input, 3 outputs, conv weight +
    # bias, MEAN axis, FC weight.
    graph = TfliteGraph((("CONV_2D", 8), ("MEAN", 0), ("FULLY_CONNECTED", 10)), tensors=8)
    expected = (
        PERSISTENT_FIXED_BYTES
        + 24 * 8  # TfLiteEvalTensor per tensor
        + 64 * 3  # NodeAndRegistration per op
        + 48  # builtin options 28 + 4 + 16, aligned to 16
        + 80 + 48 + 80  # OpDataConv, OpDataReduce (44 -> 48), OpDataFullyConnected (72 -> 80)
        + 2 * 32 + 2 * 48  # int32 multiplier + shift per channel: 8 x 4 = 32, 10 x 4 -> 48
        + 3 * 8  # MEAN's three scratch buffer handles
    )  # fmt: skip
    assert persistent_bytes(graph) == expected


def test_per_channel_arrays_are_16_byte_aligned():
    one = persistent_bytes(TfliteGraph((("CONV_2D", 1),), 4))
    assert persistent_bytes(TfliteGraph((("CONV_2D", 4),), 4)) == one  # 4 and 16 B -> 16 B
    assert persistent_bytes(TfliteGraph((("CONV_2D", 5),), 4)) == one + 2 * 16


TOY = BlockList(
    name="toy",
    resolution=8,
    input_channels=1,
    stem_channels=8,
    blocks=(MBConvSpec(8, 8, 16, 3, 1, se_channels=4, residual=True, act="h_swish"),),
    num_classes=10,
)


def test_converted_graph_of_a_toy_network():
    graph = converted_graph(TOY)
    kinds = [kind for kind, _ in graph.ops]
    assert kinds == [
        "RESHAPE", "PAD", "DEPTHWISE_CONV_2D",  # NCHW -> NHWC, stride 2 on an even input
        "CONV_2D", "HARD_SWISH", "DEPTHWISE_CONV_2D", "HARD_SWISH",
        "MEAN", "CONV_2D", "CONV_2D", "RESHAPE", "ADD", "MUL", "RESHAPE", "MUL",  # SE
        "CONV_2D", "ADD",  # project, skip
        "MEAN", "FULLY_CONNECTED",
    ]  # fmt: skip
    assert [c for _, c in graph.ops if c] == [8, 16, 16, 4, 16, 8, 10]
    # input + 19 outputs + constants: input shape, PAD amounts, 7 weight/bias pairs (stem,
    # expand, depthwise, 2 SE convs, project, FC), the SE's two shapes and two scalars, one
    # MEAN axis shared by both MEANs
    assert graph.tensors == 1 + 19 + (1 + 1 + 14 + 2 + 2 + 1)


def test_shared_constants_are_counted_once():
    block = MBConvSpec(8, 8, 16, 3, 1, se_channels=4, residual=True, act="relu")
    two = BlockList("two", 8, 1, 8, (block, block), 10)
    one = BlockList("one", 8, 1, 8, (block,), 10)
    # the second block adds 12 ops (their outputs) and 5 weight/bias pairs (expand, depthwise,
    # 2 SE convs, project), no new shape, scalar or axis tensor
    assert converted_graph(two).tensors - converted_graph(one).tensors == 12 + 2 * 5


@pytest.mark.parametrize("space_name", ["mbv3-tiny", "mbv3-tiny-w0.5-r32", "proxyless-tiny"])
def test_batched_equals_per_network(space_name):
    space = get_space(space_name)
    rng = np.random.default_rng(0)
    configs = [space.sample(rng) for _ in range(40)] + [space.smallest(), space.largest()]
    batched = persistent_of_shapes(SubnetShapes.from_configs(configs, space))
    each = [tflm_persistent_bytes(block_list_from_config(c, space)) for c in configs]
    assert batched.tolist() == each


# Measured with TFLM's recording allocator (benches.mcu_validate, random weights): arena total
# and its planned head, docs/results/mcu-validation.md.
MEASURED = [
    ("mbv3-tiny-w0.5-r32", {"resolution": 32, "kernel_size": [7, 3, 3, 3, 5, 7, 5, 3, 5, 5, 7, 7,
     7, 3, 7, 3, 5, 3, 3, 5], "expand_ratio": [3, 4, 3, 3, 6, 4, 6, 6, 6, 4, 3, 4, 6, 6, 6, 6, 4,
     4, 3, 3], "depth": [2, 3, 3, 3, 4]}, 89088, 19968),
    ("mbv3-tiny", {"resolution": 24, "kernel_size": [7, 5, 3, 5, 7, 5, 5, 7, 5, 5, 3, 3, 7, 7, 3,
     5, 7, 3, 3, 5], "expand_ratio": [4, 4, 4, 3, 4, 6, 3, 6, 3, 3, 6, 3, 6, 3, 4, 6, 6, 4, 3, 3],
     "depth": [4, 3, 2, 4, 4]}, 137456, 29952),
]  # fmt: skip


@pytest.mark.parametrize(("space_name", "config", "arena", "head"), MEASURED)
def test_whole_arena_matches_tflm_measurements(space_name, config, arena, head):
    space = get_space(space_name)
    arch = ArchConfig.from_dict(config)
    tail = tflm_persistent_bytes(block_list_from_config(arch, space))
    assert abs(tail - (arena - head)) <= 32  # two 16-byte alignment steps
    total = int(sram_bytes([arch], space, planner="tflm-arena")[0])
    assert abs(total - arena) <= 32
    assert mcu_cost(block_list_from_config(arch, space), "tflm-arena").sram_bytes == total


def test_tflm_arena_is_planned_plus_persistent_on_every_layer():
    planned = mcu_cost(TOY, "tflm")
    whole = mcu_cost(TOY, "tflm-arena")
    tail = tflm_persistent_bytes(TOY)
    assert whole.sram_bytes == planned.sram_bytes + tail
    assert [w.sram_bytes for w in whole.layers] == [p.sram_bytes + tail for p in planned.layers]
    assert whole.flash_bytes == planned.flash_bytes
