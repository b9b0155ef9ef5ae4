"""The persistent part of TensorFlow Lite Micro's tensor arena (its "tail"), per subnet.

TFLM's arena has two ends. The greedy memory planner lays the activations and scratch buffers
out from the head (the ``tflm`` planner of :mod:`supernet.cost.mcu` models that, to the byte);
everything that lives as long as the interpreter is taken from the tail. For the int8 graphs
litert-torch writes, the tail is, read from TFLM's sources (``micro_allocator.cc``,
``micro_interpreter.cc``, ``kernels/*_common.cc``) and checked with the recording allocator:

- one ``TfLiteEvalTensor`` per tensor of the graph, constants included (:data:`EVAL_TENSOR_BYTES`);
- one ``NodeAndRegistration`` per operator (:data:`NODE_BYTES`);
- each operator's builtin options (e.g. ``TfLiteConvParams``), packed back to back;
- each kernel's user data from its ``Init`` (e.g. ``OpDataConv``), 16-byte aligned;
- for CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED with per-channel weights, two int32
  arrays per output channel (the requantization multiplier and shift, ``Prepare``), each
  16-byte aligned: ``2 × align16(4 × C_out)`` bytes. This is the largest term (~70%);
- one ``ScratchBufferHandle`` per scratch buffer request (int8 ``MEAN`` makes 3);
- a fixed part (:data:`PERSISTENT_FIXED_BYTES`: the allocator, the planner object, the
  interpreter's input/output ``TfLiteTensor`` structs and their quantization).

Struct sizes are those of TFLM's Python interpreter (x86-64, 8-byte pointers), the runtime the
model is validated against; on a 32-bit Cortex-M the pointer-holding structs are smaller
(``TfLiteEvalTensor`` 12 B, the node struct ~half), so the figure is an upper bound there. The
per-channel arrays, the largest term, are the same on both.

The converted graph (what litert-torch 0.10 writes for a MobileNetV3-style block list, read from
the ``.tflite`` files of ``benches.mcu_validate``): a RESHAPE (NCHW → NHWC) after the input;
``PAD`` before a stride-2 conv on an even input; conv / depthwise conv with ReLU / ReLU6 fused,
h-swish a separate HARD_SWISH; squeeze-and-excitation as MEAN, CONV_2D (ReLU), CONV_2D,
RESHAPE, ADD (+3, ReLU6), MUL (1/6), RESHAPE, MUL; the skip an ADD; the pool a MEAN; the
classifier FULLY_CONNECTED. Constants: weights and bias of every conv / FC; one PAD amounts
tensor per distinct kernel size, one shape tensor per distinct RESHAPE target, one MEAN axis
tensor, the SE's two scalars (the converter shares identical constants).

Reference: David et al., "TensorFlow Lite Micro" (MLSys'21, arXiv 2010.08678), Sec. 4.4 (arena
head and tail, persistent allocations); Jacob et al. (arXiv 1712.05877), Sec. 2.2 (the fixed-point
multiplier and shift that requantize int32 accumulators, one pair per output channel here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from supernet.cost.macs import SubnetShapes
from supernet.cost.mcu_net import BlockList
from supernet.cost.tflm_planner import TFLM_ALIGNMENT_BYTES, align_up, converter_pad_side

__all__ = [
    "EVAL_TENSOR_BYTES",
    "KERNELS",
    "NODE_BYTES",
    "PERSISTENT_FIXED_BYTES",
    "SCRATCH_HANDLE_BYTES",
    "KernelBytes",
    "TfliteGraph",
    "converted_graph",
    "persistent_bytes",
    "persistent_of_shapes",
    "tflm_persistent_bytes",
]

EVAL_TENSOR_BYTES = 24
"""``TfLiteEvalTensor`` (data pointer, dims pointer, type), one per tensor of the graph."""

NODE_BYTES = 64
"""``NodeAndRegistration`` (``TfLiteNode`` + registration pointer), one per operator."""

SCRATCH_HANDLE_BYTES = 8
"""``ScratchBufferHandle`` (one pointer) per scratch buffer a kernel requests."""

PERSISTENT_FIXED_BYTES = 696
"""Bytes of the tail that do not grow with the graph (``MicroAllocator``, the greedy planner,
the builtin-data allocator, subgraph bookkeeping, the input and output ``TfLiteTensor`` structs
with their quantization). The one fitted constant: mean residual of the rest of the model on 17
measured subnets (random weights; residuals −16 to +8 B): docs/results/mcu-validation.md."""


@dataclass(frozen=True)
class KernelBytes:
    """Persistent bytes one operator kind takes beside its ``NodeAndRegistration``.

    Attributes:
        builtin: its builtin options struct (packed, 4-byte aligned).
        op_data: its kernel's user data (``Init``), before 16-byte alignment.
        per_channel: whether ``Prepare`` keeps an int32 multiplier and shift per output channel.
        scratch: scratch buffer requests (one handle each).
    """

    builtin: int
    op_data: int
    per_channel: bool = False
    scratch: int = 0


KERNELS: dict[str, KernelBytes] = {
    # Sizes of TFLM's structs on x86-64 (tflite-micro 0.dev20261023), measured one operator at a
    # time with the recording allocator (requested bytes) and matching the struct definitions.
    "CONV_2D": KernelBytes(28, 80, per_channel=True),  # TfLiteConvParams, OpDataConv
    "DEPTHWISE_CONV_2D": KernelBytes(28, 80, per_channel=True),  # ...DepthwiseConvParams
    "FULLY_CONNECTED": KernelBytes(16, 72, per_channel=True),  # OpDataFullyConnected
    "ADD": KernelBytes(8, 60),  # TfLiteAddParams, OpDataAdd
    "MUL": KernelBytes(4, 36),  # TfLiteMulParams, OpDataMul
    "MEAN": KernelBytes(4, 44, scratch=3),  # TfLiteReducerParams (1 B, padded), OpDataReduce
    "HARD_SWISH": KernelBytes(0, 20),  # HardSwishParams
    "PAD": KernelBytes(0, 56),  # the pad kernel's OpData
    "RESHAPE": KernelBytes(36, 0),  # TfLiteReshapeParams; no user data
}
"""Per TFLite builtin operator: the persistent bytes of :class:`KernelBytes`."""


@dataclass(frozen=True)
class TfliteGraph:
    """The converted graph as TFLM's tail sees it.

    Attributes:
        ops: ``(builtin name, per-channel output channels or 0)`` per operator, in order.
        tensors: tensors of the graph (input, one output per operator, constants).
    """

    ops: tuple[tuple[str, int], ...]
    tensors: int


def persistent_bytes(graph: TfliteGraph) -> int:
    """Bytes of TFLM's persistent arena part (the tail) for ``graph`` (see the module docstring).

    Raises:
        KeyError: an operator kind not in :data:`KERNELS`.
    """
    builtin = op_data = per_channel = scratch = 0
    for kind, channels in graph.ops:
        k = KERNELS[kind]
        builtin += k.builtin
        op_data += align_up(k.op_data) if k.op_data else 0
        per_channel += 2 * align_up(4 * channels) if k.per_channel else 0
        scratch += k.scratch
    return (
        PERSISTENT_FIXED_BYTES
        + EVAL_TENSOR_BYTES * graph.tensors
        + NODE_BYTES * len(graph.ops)
        + align_up(builtin)
        + op_data
        + per_channel
        + SCRATCH_HANDLE_BYTES * scratch
    )


def converted_graph(net: BlockList) -> TfliteGraph:
    """The operators and tensor count litert-torch writes for ``net`` (module docstring)."""
    ops: list[tuple[str, int]] = []
    consts: set[tuple[object, ...]] = set()

    def op(kind: str, channels: int = 0, *keys: tuple[object, ...]) -> None:
        ops.append((kind, channels))
        consts.update(keys)

    def conv(kind: str, channels: int, act: str) -> None:
        n = len(ops)
        op(kind, channels, ("weight", n), ("bias", n))
        if act == "h_swish":
            op("HARD_SWISH")

    def pad(size: int, kernel: int, stride: int) -> None:
        if converter_pad_side(size, kernel, stride):
            op("PAD", 0, ("pad", kernel))

    op("RESHAPE", 0, ("shape", "input"))
    pad(net.resolution, net.stem_kernel, net.stem_stride)
    conv("DEPTHWISE_CONV_2D" if net.input_channels == 1 else "CONV_2D", net.stem_channels,
         net.stem_act)  # fmt: skip
    for b, (s_in, _) in zip(net.blocks, net.sizes(), strict=True):
        if b.expand:
            conv("CONV_2D", b.mid_channels, b.act)
        pad(s_in, b.kernel_size, b.stride)
        conv("DEPTHWISE_CONV_2D", b.mid_channels, b.act)
        if b.se_channels:
            m = b.mid_channels
            op("MEAN", 0, ("axis",))
            conv("CONV_2D", b.se_channels, "relu")
            conv("CONV_2D", m, "none")
            op("RESHAPE", 0, ("shape", "nchw", m))
            op("ADD", 0, ("se", 3.0))
            op("MUL", 0, ("se", 1 / 6))
            op("RESHAPE", 0, ("shape", "nhwc", m))
            op("MUL")
        conv("CONV_2D", b.out_channels, "none")
        if b.residual:
            op("ADD")
    if net.final_expand_channels:
        conv("CONV_2D", net.final_expand_channels, net.head_act)
    op("MEAN", 0, ("axis",))
    if net.feature_mix_channels:
        conv("CONV_2D", net.feature_mix_channels, net.head_act)
    conv("FULLY_CONNECTED", net.num_classes, "none")
    return TfliteGraph(tuple(ops), 1 + len(ops) + len(consts))


def tflm_persistent_bytes(net: BlockList) -> int:
    """TFLM's persistent arena bytes for ``net`` converted by litert-torch (int8).

    Shapes: one network → bytes (int).

    Reference: TFLM, arXiv 2010.08678, Sec. 4.4.
    """
    return persistent_bytes(converted_graph(net))


class _Tally:
    """Per-subnet sums of :func:`persistent_bytes`'s terms, ``[N]`` int64 each."""

    def __init__(self, n: int) -> None:
        self.ops, self.tensors, self.builtin, self.fixed = (np.zeros(n, np.int64) for _ in "1234")

    def add(self, kind: str, on: np.ndarray | bool = True, channels: np.ndarray | int = 0,
            consts: int = 0) -> None:  # fmt: skip
        k, on = KERNELS[kind], np.asarray(on, dtype=np.int64)
        per_channel = 2 * _align16(4 * np.asarray(channels)) if k.per_channel else 0
        opdata = align_up(k.op_data) if k.op_data else 0
        self.ops += on
        self.tensors += on * (1 + consts)
        self.builtin += on * k.builtin
        self.fixed += on * (opdata + per_channel + SCRATCH_HANDLE_BYTES * k.scratch)

    def conv(self, kind: str, on: np.ndarray | bool, channels: np.ndarray | int, act: str) -> None:
        self.add(kind, on, channels, consts=2)
        if act == "h_swish":
            self.add("HARD_SWISH", on)


def _align16(x: np.ndarray) -> np.ndarray:
    return -(-x // TFLM_ALIGNMENT_BYTES) * TFLM_ALIGNMENT_BYTES


def persistent_of_shapes(shapes: SubnetShapes) -> np.ndarray:
    """TFLM's persistent arena bytes of subnets whose shapes are built, ``[N]`` int64 (the
    numbers of :func:`tflm_persistent_bytes` on each subnet's block list, tested equal)."""
    sh, sp = shapes, shapes.space
    n = len(sh.resolution)
    t = _Tally(n)
    t.add("RESHAPE", consts=1)
    stem_pad = converter_pad_side(sh.resolution, 3, sp.stem_stride) > 0
    t.add("PAD", stem_pad)
    t.conv("DEPTHWISE_CONV_2D" if sp.input_channels == 1 else "CONV_2D", True, sp.stem_width,
           sp.head_act)  # fmt: skip
    t.conv("DEPTHWISE_CONV_2D", True, sp.stem_width, "relu")  # the fixed first block
    t.conv("CONV_2D", True, sp.first_block_width, "none")
    t.add("ADD", bool(sh.first_block_residual))
    pads = {3: stem_pad}  # kernel size -> [N] whether some PAD of that kernel exists
    se_mids: dict[int, np.ndarray] = {}
    acts = [st.act for st in sp.stages for _ in range(st.max_depth)]
    strides = [st.stride if i == 0 else 1 for st in sp.stages for i in range(st.max_depth)]
    for s in range(sp.num_blocks):
        on, mid, k = sh.active[:, s], sh.mid_channels[:, s], sh.kernel_size[:, s]
        t.conv("CONV_2D", on, mid, acts[s])
        if strides[s] == 2:
            padded = on & (converter_pad_side(sh.in_size[:, s], k, 2) > 0)
            t.add("PAD", padded)
            for kernel in np.unique(k):
                pads[int(kernel)] = pads.get(int(kernel), False) | (padded & (k == kernel))
        t.conv("DEPTHWISE_CONV_2D", on, mid, acts[s])
        if sh.use_se[s]:
            t.add("MEAN", on)
            t.conv("CONV_2D", on, sh.se_mid_channels[:, s], "relu")
            t.conv("CONV_2D", on, mid, "none")
            for kind in ("RESHAPE", "ADD", "MUL", "RESHAPE", "MUL"):
                t.add(kind, on)
            for m in np.unique(mid):
                se_mids[int(m)] = se_mids.get(int(m), False) | (on & (mid == m))
        t.conv("CONV_2D", on, sh.out_channels[s], "none")
        t.add("ADD", on & bool(sh.residual[s]))
    t.conv("CONV_2D", True, sp.final_expand_width, sp.head_act)
    t.add("MEAN")
    t.conv("CONV_2D", True, sp.feature_mix_width, sp.head_act)
    t.conv("FULLY_CONNECTED", True, sp.num_classes, "none")
    any_se = np.zeros(n, bool)
    for present in se_mids.values():
        any_se |= present
    consts = (
        1  # the MEAN axis
        + sum(np.asarray(p, np.int64) for p in pads.values())
        + 2 * sum(np.asarray(p, np.int64) for p in se_mids.values())  # the SE's two shapes
        + 2 * any_se  # the SE's +3 and 1/6
    )
    tensors = 1 + t.tensors + consts
    return (
        PERSISTENT_FIXED_BYTES
        + EVAL_TENSOR_BYTES * tensors
        + NODE_BYTES * t.ops
        + _align16(t.builtin)
        + t.fixed
    ).astype(np.int64)
