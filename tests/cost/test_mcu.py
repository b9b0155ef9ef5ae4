"""int8 SRAM (per memory planner) and Flash of MBConv networks on a microcontroller."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from supernet.cost import (
    BlockList,
    MBConvSpec,
    block_list_from_config,
    flash_bytes,
    load_block_list,
    mcu_cost,
    sram_bytes,
)
from supernet.cost.mcu import (
    BIAS_BYTES,
    CONVERTER_OPS,
    FLASH_FIXED_BYTES,
    FLASH_PER_OP_BYTES,
    PLANNERS,
    QUANT_BYTES_PER_CHANNEL,
)
from supernet.cost.tflm_planner import converter_pad_side
from supernet.errors import ConfigError
from supernet.nn import create_supernet
from supernet.space import get_space, sample_batch

FIXTURES = Path(__file__).parent / "fixtures" / "mcunet"

# Toy A: 1x8x8 input → stem 3x3 s2 to 4 ch (4x4, relu6 fused) → block 0: 4 → 4, mid 8, k3 s1,
# residual → block 1: 4 → 8, mid 12, k3 s2 (2x2) → pool → linear to 2 classes.
TOY_A = BlockList(
    name="toy-a",
    resolution=8,
    input_channels=1,
    stem_channels=4,
    blocks=(
        MBConvSpec(4, 4, 8, 3, 1, expand=True, residual=True),
        MBConvSpec(4, 8, 12, 3, 2, expand=True),
    ),
    num_classes=2,
)
# Toy B: the same stem, then one MBConv without expand conv but with a skip (dw input = the skip).
TOY_B = BlockList(
    name="toy-b",
    resolution=8,
    input_channels=1,
    stem_channels=4,
    blocks=(MBConvSpec(4, 4, 4, 3, 1, expand=False, residual=True, act="relu"),),
    num_classes=2,
)


def _layer(cost, name):
    return next(layer for layer in cost.layers if layer.name == name)


def test_naive_counts_input_plus_output_and_the_kept_skip_by_hand():
    # elements = int8 bytes. stem: 64 image + 4*4*4 = 64 out.  block 0 (4x4): x 64, t 16*8 = 128
    # expand 64 + 128 = 192; depthwise 128 + 128 + skip 64 = 320; project 128 + 64 = 192.
    # block 1: x 64, t_in 16*12 = 192, t_out 4*12 = 48, y 4*8 = 32: expand 256, dw 240, proj 80.
    cost = mcu_cost(TOY_A, "naive")
    expected = {"stem": 128, "blocks.0.expand": 192, "blocks.0.depthwise": 320,
                "blocks.0.project": 192, "blocks.1.expand": 256, "blocks.1.depthwise": 240,
                "blocks.1.project": 80, "classifier": 8 + 2}  # fmt: skip
    assert {k: _layer(cost, k).sram_bytes for k in expected} == expected
    assert _layer(cost, "blocks.0.add").sram_bytes is None  # adds and pools are not counted
    assert cost.sram_bytes == 320


def test_tinyengine_depthwise_is_in_place_plus_one_channel():
    # block 0 depthwise: input 128 + one output channel 4*4 = 16 + kept skip 64 = 208;
    # block 1: 192 + one 2x2 channel 4 = 196. Peak is then block 1's expand, 256.
    cost = mcu_cost(TOY_A, "tinyengine")
    assert _layer(cost, "blocks.0.depthwise").sram_bytes == 208
    assert _layer(cost, "blocks.1.depthwise").sram_bytes == 196
    assert cost.sram_bytes == 256


def test_depthwise_on_the_kept_skip_itself_is_not_in_place():
    # TOY_B: x = 64 is both the depthwise input and the skip. naive (MCUNet's rule) counts
    # 64 in + 64 out + 64 skip = 192; tinyengine keeps x and writes a new output: 64 + 64 = 128.
    assert _layer(mcu_cost(TOY_B, "naive"), "blocks.0.depthwise").sram_bytes == 192
    assert _layer(mcu_cost(TOY_B, "tinyengine"), "blocks.0.depthwise").sram_bytes == 128
    assert mcu_cost(TOY_B, "naive").sram_bytes == 192
    assert mcu_cost(TOY_B, "tinyengine").sram_bytes == 128


def test_tflm_peak_of_toy_a_by_hand():
    # The converter pads explicitly before a stride-2 conv on an even input (PAD to H + k - 1):
    # the stem (8x8x1 -> 10x10x1 = 100, aligned 112) and block 1 (4x4x12 -> 6x6x12 = 432).
    # Tensors (16-byte aligned) with (first, last) scope: input 64 (0,1), stem pad 112 (1,2),
    # stem 64 (2,6), expand 128 (3,4), dw 128 (4,5), project 64 (5,6), add 64 (6,7), b1 expand
    # 192 (7,8), b1 pad 432 (8,9), b1 dw 48 (9,10), b1 project 32 (10,11), pool 16 (11,12) +
    # MEAN scratch 32 (11,11), logits 16 (12,12).
    # Greedy (largest first): b1 pad @0, b1 expand @432 (they meet in scope 8), dw @0, expand
    # @128, stem pad @0, add @0, project @128, stem output @256, input @112, ... → the peak is
    # b1 expand's end, 432 + 192 = 624 (320 without the PADs).
    cost = mcu_cost(TOY_A, "tflm")
    assert cost.sram_bytes == 624
    assert _layer(cost, "blocks.1.pad").sram_bytes == 624
    assert _layer(cost, "stem.pad").sram_bytes == 176  # stem pad @0-112 + input @112-176
    assert _layer(cost, "stem").sram_bytes == 320  # the stem output is placed highest
    assert _layer(cost, "classifier").sram_bytes == 80  # pool vector @64 + 16


def test_converter_pad_rule_by_hand():
    # PyTorch pads k // 2 per side; TFLite SAME at stride 2 pads k - 2 on an even input (the
    # converter then writes PAD to H + k - 1) and k - 1 = PyTorch's on an odd one (no PAD).
    assert converter_pad_side(16, 5, 2) == 20  # measured: 16x16x48 -> PAD 20x20x48
    assert converter_pad_side(6, 3, 2) == 8
    assert converter_pad_side(7, 3, 2) == 0  # odd input: SAME is symmetric, no PAD
    assert converter_pad_side(16, 7, 1) == 0  # stride 1: no PAD
    # Toy C: 1x7x7 input (odd) -> stem 4x4x4 without PAD; block 0 k5 s2 on 4x4 (even) with
    # mid 8: PAD 8x8x8 = 512 B between expand (128) and depthwise (2x2x8 = 32).
    toy_c = BlockList(
        name="toy-c", resolution=7, input_channels=1, stem_channels=4,
        blocks=(MBConvSpec(4, 8, 8, 5, 2, expand=True),), num_classes=2,
    )  # fmt: skip
    cost = mcu_cost(toy_c, "tflm")
    kinds = [(layer.name, layer.kind) for layer in cost.layers]
    assert ("stem.pad", "pad") not in kinds and ("blocks.0.pad", "pad") in kinds
    # scope of the PAD: expand output 128 and PAD 512 alive, placed 512 @0, 128 @512
    assert _layer(cost, "blocks.0.pad").sram_bytes == cost.sram_bytes == 640
    assert _layer(cost, "blocks.0.pad").flash_bytes == 0  # in the fitted per-op bytes
    assert _layer(mcu_cost(toy_c, "naive"), "blocks.0.pad").sram_bytes is None


def test_flash_by_hand():
    weights = 1 * 9 * 4 + 4 * 8 + 8 * 9 + 8 * 4 + 4 * 12 + 12 * 9 + 12 * 8 + 8 * 2
    channels = 4 + 8 + 8 + 4 + 12 + 12 + 8 + 2  # one bias + quant params per output channel
    ops = 10  # stem, 3 + add, 3, pool, classifier
    expected = (weights + channels * (BIAS_BYTES + QUANT_BYTES_PER_CHANNEL)
                + ops * FLASH_PER_OP_BYTES + FLASH_FIXED_BYTES)  # fmt: skip
    assert mcu_cost(TOY_A).flash_bytes == expected == 2064 + 10 * 182  # 2064 B payload


def _mcunet_peak(data: dict) -> int:
    """An independent re-implementation of MCUNet's count_peak_activation_size (mit-han-lab/
    mcunet, utils/pytorch_utils.py at commit 8326da6) on the raw ProxylessNASNets JSON: every
    conv / linear holds input + output; a block with a shortcut adds its input to the depthwise
    conv only; a ZeroLayer block counts 0; sizes follow PyTorch's conv formula
    floor((H + 2p - k) / s) + 1 with p = k // 2."""

    def conv_out(h, k, s):
        return (h + 2 * (k // 2) - k) // s + 1

    first = data["first_conv"]
    h0 = data["resolution"]
    h = conv_out(h0, first["kernel_size"], first["stride"])
    mems = [h0 * h0 * first["in_channels"] + h * h * first["out_channels"]]
    channels = first["out_channels"]
    for block in data["blocks"]:
        conv = block["mobile_inverted_conv"]
        if conv["name"] == "ZeroLayer":  # an identity block: MCUNet counts 0
            mems.append(0)
            continue
        cin, cout = conv["in_channels"], conv["out_channels"]
        k, s = conv["kernel_size"], conv["stride"]
        mid = conv["mid_channels"] or round(cin * conv["expand_ratio"])
        ho = conv_out(h, k, s)
        expand = h * h * cin + h * h * mid if conv["expand_ratio"] != 1 else 0
        dw = h * h * mid + ho * ho * mid
        project = ho * ho * mid + ho * ho * cout
        if block["shortcut"] is not None:
            dw += h * h * cin
        mems.append(max(expand, dw, project))
        h, channels = ho, cout
    mix = data["feature_mix_layer"]
    if mix is not None:
        mems.append(h * h * channels + h * h * mix["out_channels"])
        channels = mix["out_channels"]
    mems.append(channels + data["classifier"]["out_features"])
    return max(mems)


# "Act" column of the mcunet README at commit 8326da6 (theoretical peak activation, int8, kB
# printed as KiB rounded): MCUNet 256kB/1MB 325, 320kB/1MB 333, 512kB/2MB 413; Proxyless-s
# w0.3-r176 242.
PUBLISHED_ACT_KIB = {"mcunet-256kb-1mb": 325, "mcunet-320kb-1mb": 333,
                     "mcunet-512kb-2mb": 413, "proxyless-w0.3-r176": 242}  # fmt: skip


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_naive_equals_mcunets_count_on_published_models(path):
    data = json.loads(path.read_text())
    peak = mcu_cost(load_block_list(path), "naive").sram_bytes
    assert peak == _mcunet_peak(data)
    if path.stem in PUBLISHED_ACT_KIB:
        assert int(peak / 1024 + 0.5) == PUBLISHED_ACT_KIB[path.stem]  # rounded half up


@pytest.mark.parametrize(
    "space_name", ["mbv3-tiny", "proxyless-tiny", "mbv3-tiny-w0.5-r24", "ofa-mbv3"]
)
def test_batched_equals_per_config(space_name):
    # Two independent paths: numpy over the batch (tflm: the padded-timeline greedy of
    # supernet.cost.tflm_batch) vs one block list and one operator graph per config.
    space = get_space(space_name)
    batch = sample_batch(space, 40, np.random.default_rng(3))
    nets = [block_list_from_config(c, space) for c in batch]
    for planner in PLANNERS:
        expected = [mcu_cost(n, planner).sram_bytes for n in nets]
        assert sram_bytes(batch, space, planner=planner).tolist() == expected
    assert flash_bytes(batch, space).tolist() == [mcu_cost(n).flash_bytes for n in nets]
    assert sram_bytes(batch[:0], space, planner="tflm").shape == (0,)


def test_block_list_of_a_config_has_the_subnets_weights():
    # The int8 graph's conv / linear weights are exactly those of the extracted subnet.
    space = get_space("mbv3-tiny-w0.25-r16")
    config = sample_batch(space, 1, np.random.default_rng(0))[0]
    subnet = create_supernet(space).get_subnet(config)
    convs = (torch.nn.Conv2d, torch.nn.Linear)
    expected = sum(m.weight.numel() for m in subnet.modules() if isinstance(m, convs))
    net = block_list_from_config(config, space)
    flash = mcu_cost(net).flash_bytes
    channels = sum(m.weight.shape[0] for m in subnet.modules() if isinstance(m, convs))
    ops = sum(layer.kind not in CONVERTER_OPS for layer in mcu_cost(net).layers)  # no PAD
    overhead = channels * (BIAS_BYTES + QUANT_BYTES_PER_CHANNEL) + ops * FLASH_PER_OP_BYTES
    assert flash - overhead - FLASH_FIXED_BYTES == expected


def test_tinyengine_never_exceeds_naive_and_tflm_never_undercuts_live_tensors():
    space = get_space("mbv3-tiny")
    batch = sample_batch(space, 50, np.random.default_rng(1))
    naive = sram_bytes(batch, space, planner="naive")
    assert (sram_bytes(batch, space, planner="tinyengine") <= naive).all()


def test_block_list_round_trips_and_reads_subnet_json(tmp_path):
    path = tmp_path / "net.json"
    path.write_text(json.dumps(TOY_A.to_dict()))
    assert load_block_list(path) == TOY_A
    space = get_space("mbv3-tiny")
    config = space.smallest()
    path.write_text(json.dumps({"space": "mbv3-tiny", "config": config.to_dict()}))
    assert load_block_list(path) == block_list_from_config(config, space)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({"hello": 1}, "not a block list"),
        ({"format": "supernet-block-list", "nope": 1}, r"unknown field\(s\) \['nope'\]"),
        ({"first_conv": {}, "blocks": []}, "not a ProxylessNASNets config"),
    ],
)
def test_bad_block_lists_name_the_problem(tmp_path, data, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message):
        load_block_list(path)


def test_bad_blocks_and_planners_are_refused():
    with pytest.raises(ConfigError, match=r"blocks\[0\]\.in_channels = 8"):
        BlockList("x", 8, 1, 4, (MBConvSpec(8, 8, 16, 3, 1),), 2)
    with pytest.raises(ConfigError, match="residual needs stride 1"):
        MBConvSpec(4, 4, 8, 3, 2, residual=True)
    with pytest.raises(ConfigError, match=r"memory planner = 'greedy' is not known; choose from"):
        mcu_cost(TOY_A, "greedy")
    with pytest.raises(ConfigError, match="is not known"):
        sram_bytes([get_space("mbv3-tiny").smallest()], get_space("mbv3-tiny"), planner="x")
