"""int8 SRAM and Flash of an MBConv network on a microcontroller, per layer and in total, for
one block list (:class:`~supernet.cost.mcu_net.BlockList`); the batched form over a
``ConfigBatch`` is :mod:`supernet.cost.mcu_batch` (same numbers, tested).

SRAM is the peak activation memory (int8: 1 byte per element, batch 1) under a named memory
planner (:data:`PLANNERS`):

- ``naive`` — how MCUNet's own code counts peak activation memory
  (``count_peak_activation_size`` in mit-han-lab/mcunet ``utils/pytorch_utils.py``): every conv
  and linear layer holds its input and its output; inside an MBConv block with a skip the block
  input is also held during the depthwise conv (not during expand, where it is the input, nor
  during project, which MCUNet's code leaves out); squeeze-and-excitation, activations, pooling
  and adds are not counted; the peak is the largest layer.
- ``tinyengine`` — ``naive`` with MCUNet's in-place depthwise convolution (MCUNet, Sec. 3.2,
  "in-place depth-wise convolution"): a depthwise conv writes each output channel into a
  one-channel temporary buffer and copies it back over its input channel, so it holds its input
  plus one output channel (``H_out × W_out`` bytes), not input + output. Where the depthwise
  input is the block input itself and the block has a skip (no expand conv), the input must be
  kept and the conv is not in place.
- ``tflm`` — what TensorFlow Lite Micro's greedy planner allocates for the converted graph
  (:mod:`supernet.cost.tflm_planner`): every tensor from its producer to its last consumer
  (so a skip's input stays alive through its block), 16-byte aligned, plus scratch buffers
  (int8 ``MEAN`` asks for ``4 ×`` its output elements). The modelled graph: conv /
  depthwise conv with ReLU / ReLU6 fused, h-swish a separate ``HARD_SWISH`` op, SE as ``MEAN``,
  conv, conv, a gate op and ``MUL``, the skip an ``ADD``, the pool a ``MEAN``, then the head;
  before a stride-2 conv on an even input (the stem, stride-2 depthwise convs) the converter's
  explicit ``PAD`` to ``(H + k − 1)² × C`` int8, alive from the PAD to the conv
  (:func:`~supernet.cost.tflm_planner.converter_pad_side`; listed as ``"pad"`` layers, no Flash
  of their own, not counted by ``naive`` / ``tinyengine``). This matches the planned ("head")
  part of the arena TFLM's recording allocator reports to the byte on the 12 subnets of
  ``benches.mcu_validate`` (docs/results/mcu-validation.md). The converter's layout RESHAPEs
  (input NCHW → NHWC, SE) are left out (the match holds without them); the converter's tensor
  order (which only breaks ties between equal sizes) is not modelled. This is the planned
  part only: TFLM's arena also holds a persistent part, counted by ``tflm-arena``.
- ``tflm-arena`` — the whole tensor arena TFLM needs, what a board must give it: ``tflm``'s
  planned activations plus the persistent part (tensor structs, operator nodes, each conv's
  per-channel requantization multipliers and shifts, kernel data;
  :mod:`supernet.cost.tflm_persistent`), added to every layer's SRAM (it lives throughout).
  Within 0.04% of the total the recording allocator measures (docs/results/mcu-validation.md).

Flash = int8 weights + int32 biases (BN folded into convs) + per-output-channel quantization
parameters of weight and bias (TFLite stores a float32 scale and an int64 zero point per channel)
+ :data:`FLASH_PER_OP_BYTES` per operator + :data:`FLASH_FIXED_BYTES`, the two overheads fitted
to real ``.tflite`` files (``python -m benches.mcu_validate``).

Reference: MCUNet (Lin et al., NeurIPS'20, arXiv 2007.10319), Sec. 3.1 (SRAM / Flash limits),
Sec. 3.2 (TinyEngine, in-place depthwise); TensorFlow Lite Micro (arXiv 2010.08678), Sec. 4.4.
"""

from __future__ import annotations

from dataclasses import dataclass

from supernet.cost.mcu_net import BlockList
from supernet.cost.tflm_persistent import tflm_persistent_bytes
from supernet.cost.tflm_planner import (
    Buffer,
    align_up,
    converter_pad_side,
    greedy_plan,
    live_high_water,
)
from supernet.errors import ConfigError

__all__ = [
    "BIAS_BYTES",
    "CONVERTER_OPS",
    "FLASH_FIXED_BYTES",
    "FLASH_PER_OP_BYTES",
    "FLASH_SEARCH_MARGIN",
    "PLANNERS",
    "QUANT_BYTES_PER_CHANNEL",
    "McuCost",
    "McuLayer",
    "check_planner",
    "mcu_cost",
]

CONVERTER_OPS = ("pad",)
"""Operator kinds the converter adds (not layers of the network): no Flash of their own, not
counted by ``naive`` / ``tinyengine``; the ``tflm`` planner places their output tensors."""

PLANNERS = ("naive", "tflm", "tflm-arena", "tinyengine")
"""Memory planners the SRAM model knows (see the module docstring)."""

BIAS_BYTES = 4
"""Bytes of one int32 bias (one per output channel of every conv / linear, BN folded)."""

QUANT_BYTES_PER_CHANNEL = 2 * (4 + 8)
"""Per output channel: the weight's and the bias's float32 scale and int64 zero point (TFLite
``QuantizationParameters``, per-channel quantization)."""

FLASH_PER_OP_BYTES = 182
"""Flatbuffer bytes per modelled operator (operator record, its output tensor's record: shape,
type, activation quantization; also the converter's PAD / RESHAPE ops that ride along), in files
whose tensor names are stripped (:func:`supernet.export.tflite.strip_tensor_names`). Fitted to 18
measured ``.tflite`` sizes (litert-torch 0.10; 16 random-weight subnets of mbv3-tiny and
mbv3-tiny-w0.5-r32, 2 trained subnets): worst error -4.1%, leave-one-out worst -4.4%
(docs/results/mcu-validation.md)."""

FLASH_SEARCH_MARGIN = 0.05
"""Fraction of a Flash budget a search keeps free: it searches under ``(1 - margin) x`` the budget,
because the Flash model is an estimate (leave-one-out worst -4.4%, trained subnets the worst), and
the budget is then checked on the real ``.tflite`` size."""

FLASH_FIXED_BYTES = 0
"""Fixed bytes of a ``.tflite`` file (header, operator codes, subgraph, metadata, signature). A
least-squares fit with a free constant put it below zero (-2,032 B) — the per-operator bytes
absorb it — so it is fixed at 0 and :data:`FLASH_PER_OP_BYTES` fitted alone."""


def check_planner(planner: str) -> str:
    """``planner`` if it is one of :data:`PLANNERS`.

    Raises:
        ConfigError: naming the value and the planners.
    """
    if planner not in PLANNERS:
        raise ConfigError(f"memory planner = {planner!r} is not known; choose from {PLANNERS}")
    return planner


@dataclass(frozen=True)
class McuLayer:
    """One operator of the int8 graph: ``sram_bytes`` in use while it runs under the planner
    (``None`` where the planner does not count the op, e.g. an activation under ``naive``),
    ``flash_bytes`` it stores (weights, biases, quantization parameters, op overhead)."""

    name: str
    kind: str
    sram_bytes: int | None
    flash_bytes: int


@dataclass(frozen=True)
class McuCost:
    """int8 costs of one network: ``layers`` in execution order, ``sram_bytes`` (the peak) and
    ``flash_bytes`` (the sum plus :data:`FLASH_FIXED_BYTES`), both in bytes."""

    planner: str
    layers: tuple[McuLayer, ...]
    sram_bytes: int
    flash_bytes: int


@dataclass
class _Graph:
    """Operators of the int8 graph: tensors (int8 elements) and ops in execution order."""

    tensors: list[int]
    ops: list[tuple[str, str, tuple[int, ...], int, int, int, int]]
    # (name, kind, input tensor ids, output tensor id, weights, output channels, scratch bytes)
    counted: dict[str, int]  # naive / tinyengine bytes of the ops the rule counts

    def tensor(self, elements: int) -> int:
        self.tensors.append(elements)
        return len(self.tensors) - 1

    def op(self, name: str, kind: str, inputs: tuple[int, ...], out_elements: int,
           weights: int = 0, channels: int = 0, scratch: int = 0) -> int:  # fmt: skip
        out = self.tensor(out_elements)
        self.ops.append((name, kind, inputs, out, weights, channels, scratch))
        return out

    def conv(self, name: str, x: int, out_elements: int, weights: int, channels: int,
             act: str, kind: str = "conv") -> int:  # fmt: skip
        y = self.op(name, kind, (x,), out_elements, weights, channels)
        if act == "h_swish":  # TFLite fuses ReLU / ReLU6 into the conv, not h-swish
            y = self.op(f"{name}.act", "hard_swish", (y,), out_elements)
        return y


def _graph(net: BlockList, planner: str) -> _Graph:
    """Build the int8 operator graph and the naive / tinyengine count of each counted op."""
    g = _Graph([], [], {})
    r, c_in = net.resolution, net.input_channels
    size = -(-r // net.stem_stride)
    image, stem_out = r * r * c_in, size * size * net.stem_channels
    stem_weights = c_in * net.stem_kernel**2 * net.stem_channels
    x = g.tensor(image)
    side = converter_pad_side(r, net.stem_kernel, net.stem_stride)
    if side:
        x = g.op("stem.pad", "pad", (x,), side * side * c_in)
    x = g.conv("stem", x, stem_out, stem_weights, net.stem_channels, net.stem_act)
    g.counted["stem"] = image + stem_out
    for i, (b, (s_in, s_out)) in enumerate(zip(net.blocks, net.sizes(), strict=True)):
        p = f"blocks.{i}"
        x_el, t_in = s_in * s_in * b.in_channels, s_in * s_in * b.mid_channels
        t_out, y_el = s_out * s_out * b.mid_channels, s_out * s_out * b.out_channels
        skip = x_el if b.residual else 0
        t = x
        if b.expand:
            t = g.conv(f"{p}.expand", x, t_in, b.in_channels * b.mid_channels, b.mid_channels,
                       b.act)  # fmt: skip
            g.counted[f"{p}.expand"] = x_el + t_in
        side = converter_pad_side(s_in, b.kernel_size, b.stride)
        if side:
            t = g.op(f"{p}.pad", "pad", (t,), side * side * b.mid_channels)
        t = g.conv(f"{p}.depthwise", t, t_out, b.mid_channels * b.kernel_size**2,
                   b.mid_channels, b.act, kind="depthwise")  # fmt: skip
        if planner == "tinyengine" and (b.expand or not b.residual):
            g.counted[f"{p}.depthwise"] = t_in + s_out * s_out + skip  # in place + 1 channel
        elif planner == "tinyengine":
            g.counted[f"{p}.depthwise"] = x_el + t_out  # its input is the kept skip itself
        else:
            g.counted[f"{p}.depthwise"] = t_in + t_out + skip
        if b.se_channels:
            m, se = b.mid_channels, b.se_channels
            v = g.op(f"{p}.se.pool", "mean", (t,), m, scratch=4 * m)
            v = g.op(f"{p}.se.reduce", "conv", (v,), se, m * se, se)
            v = g.op(f"{p}.se.expand", "conv", (v,), m, se * m, m)
            v = g.op(f"{p}.se.gate", "hard_sigmoid", (v,), m)
            t = g.op(f"{p}.se.scale", "mul", (t, v), t_out)
        y = g.op(f"{p}.project", "conv", (t,), y_el, b.mid_channels * b.out_channels,
                 b.out_channels)  # fmt: skip
        g.counted[f"{p}.project"] = t_out + y_el
        x = g.op(f"{p}.add", "add", (y, x), y_el) if b.residual else y
        size = s_out
    area, channels = size * size, net.last_channels
    if net.final_expand_channels:
        fe = net.final_expand_channels
        x = g.conv("final_expand", x, area * fe, channels * fe, fe, net.head_act)
        g.counted["final_expand"] = area * channels + area * fe
        channels = fe
    x = g.op("pool", "mean", (x,), channels, scratch=4 * channels)
    if net.feature_mix_channels:
        fm = net.feature_mix_channels
        x = g.conv("feature_mix", x, fm, channels * fm, fm, net.head_act)
        g.counted["feature_mix"] = channels + fm
        channels = fm
    g.op("classifier", "linear", (x,), net.num_classes, channels * net.num_classes,
         net.num_classes)  # fmt: skip
    g.counted["classifier"] = channels + net.num_classes
    return g


def _op_flash(kind: str, weights: int, channels: int) -> int:
    if kind in CONVERTER_OPS:
        return 0  # their bytes are in FLASH_PER_OP_BYTES of the modelled ops (fitted so)
    return weights + channels * (BIAS_BYTES + QUANT_BYTES_PER_CHANNEL) + FLASH_PER_OP_BYTES


def _tflm_plan(g: _Graph) -> tuple[list[Buffer], list[int], int]:
    """TFLM's buffers of the graph (tensors in creation order, then scratch buffers), their
    offsets and the arena bytes they need."""
    first = [0] * len(g.tensors)  # the graph input is created at scope 0
    last = [0] * len(g.tensors)
    scratch: list[Buffer] = []
    for scope, (_, _, inputs, out, _, _, scratch_bytes) in enumerate(g.ops, start=1):
        first[out] = last[out] = scope
        for t in inputs:
            last[t] = scope
        if scratch_bytes:
            scratch.append(Buffer(align_up(scratch_bytes), scope, scope))
    last[g.ops[-1][3]] = len(g.ops)  # the graph output lives to the end
    buffers = [Buffer(align_up(n), f, la) for n, f, la in zip(g.tensors, first, last, strict=True)]
    buffers += scratch
    offsets, total = greedy_plan(buffers)
    return buffers, offsets, total


def mcu_cost(net: BlockList, planner: str = "tflm") -> McuCost:
    """int8 SRAM (peak activation memory under ``planner``) and Flash of ``net``, per layer and
    in total (see the module docstring for what each planner counts).

    Shapes: one network → ``McuCost`` with one :class:`McuLayer` per operator; bytes throughout.

    Raises:
        ConfigError: ``planner`` is not one of :data:`PLANNERS`.

    Reference: MCUNet, arXiv 2007.10319, Sec. 3.1-3.2; TFLM, arXiv 2010.08678, Sec. 4.4.
    """
    check_planner(planner)
    g = _graph(net, planner)
    tflm = None
    if planner in ("tflm", "tflm-arena"):
        buffers, offsets, _ = _tflm_plan(g)
        tail = tflm_persistent_bytes(net) if planner == "tflm-arena" else 0
        tflm = [tail + live_high_water(buffers, offsets, s) for s in range(1, len(g.ops) + 1)]
    layers = []
    for k, (name, kind, _, _, weights, channels, _) in enumerate(g.ops):
        sram = tflm[k] if tflm is not None else g.counted.get(name)
        layers.append(McuLayer(name, kind, sram, _op_flash(kind, weights, channels)))
    peak = max(layer.sram_bytes or 0 for layer in layers)
    flash = sum(layer.flash_bytes for layer in layers) + FLASH_FIXED_BYTES
    return McuCost(planner, tuple(layers), int(peak), int(flash))
