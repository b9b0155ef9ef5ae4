"""What each layer keeps for backward: per-module rules and the forward-hook tracer behind
:func:`supernet.transfer.memory.training_memory`.

Every leaf module (and every op of squeeze-and-excitation, which calls ReLU, h-sigmoid and the
gate product functionally) becomes one :class:`TracedRow` with two answers: the paper's rule
(TinyTL, arXiv 2007.11622, Sec. 3.1) and what this implementation's module class really keeps
(see :mod:`supernet.transfer.memory`). Tensors are keyed by storage (``("storage", device,
data_ptr)``; ``("new", i)`` for tensors made by the op itself: masks, copies, statistics), so a
tensor saved by two layers is counted once, as autograd keeps it once.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from supernet.errors import ConfigError
from supernet.nn.blocks import MBConv, SqueezeExcite, WSConv2d
from supernet.transfer.efficient import (
    EfficientAvgPool2d,
    EfficientBatchNorm2d,
    EfficientConv2d,
    EfficientGroupNorm,
    EfficientLinear,
    EfficientReLU,
    EfficientReLU6,
    EfficientWSConv2d,
)
from supernet.transfer.lite_residual import LiteResidual, LiteResidualMBConv
from supernet.transfer.quantize import QuantizedConv2d, QuantizedLinear

__all__ = [
    "PAPER_ACTIVATION_BYTES",
    "MemoryTracer",
    "TracedRow",
    "TracedTensor",
    "mask_elements",
]

PAPER_ACTIVATION_BYTES = 4  # 32-bit activations

_FROZEN_SAVES_NOTHING = (EfficientConv2d, EfficientWSConv2d, EfficientLinear, QuantizedConv2d,
                         QuantizedLinear)  # fmt: skip
_SAVES_INPUT = (nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.GELU, nn.Mish)
_SAVES_OUTPUT = (nn.Sigmoid, nn.Tanh)
_SAVES_NOTHING = (nn.AdaptiveAvgPool2d, nn.Upsample, nn.UpsamplingBilinear2d)
_SKIPPED = (nn.Identity, nn.Flatten, nn.Unflatten)
Saved = tuple[int, dict[Any, int], int]
"""A layer's (paper saved bytes, full-accounting ``{tensor key: bytes}``, fixed saved bytes)."""


class TracedTensor(NamedTuple):
    """A traced tensor: storage key, elements and shape per image, needs a gradient (``rg``),
    bytes per element (``es``)."""

    key: Any
    numel: int
    shape: tuple[int, ...]
    rg: bool
    es: int

    @property
    def paper(self) -> int:
        return self.numel * PAPER_ACTIVATION_BYTES

    @property
    def nbytes(self) -> int:
        return self.numel * self.es


@dataclass
class TracedRow:
    """One step of the forward pass: paper saved / working / held bytes (ints) and full-accounting
    tensors (``{key: bytes}``) per image; ``fixed``: saved bytes that do not grow with the batch."""

    name: str
    kind: str
    x: TracedTensor
    y: TracedTensor
    saved: int  # paper
    saved_full: dict[Any, int]
    fixed: int
    working: int  # paper
    held: int = 0
    held_full: dict[Any, int] = field(default_factory=dict)


def _trains(p: Any) -> bool:
    return isinstance(p, torch.Tensor) and p.requires_grad


def _mask_bytes(numel: int) -> int:
    return math.ceil(numel / 8)


def mask_elements(key: Any) -> int | None:
    """Elements per image of the bit-packed mask saved under ``key``; None for other tensors
    (a batch of ``B`` images packs ``ceil(B · n / 8)`` bytes, not ``B · ceil(n / 8)``)."""
    return key[3] if key[0] == "new" and len(key) == 4 and key[2] == "mask" else None


def _linear_op(m: nn.Module, x: TracedTensor) -> Saved:
    """Conv / linear: (paper saved, full saved, fixed saved)."""
    w, b = _trains(m.weight), _trains(getattr(m, "bias", None))
    paper = x.paper if w else 0
    zero_padded = not isinstance(m, nn.Conv2d) or (
        m.padding_mode == "zeros" and not isinstance(m.padding, str))  # fmt: skip
    if not (x.rg or w or b) or (not w and isinstance(m, _FROZEN_SAVES_NOTHING) and zero_padded):
        return paper, {}, 0
    if isinstance(m, nn.Linear):  # native addmm keeps its input only for the weight gradient
        return paper, ({x.key: x.nbytes} if w else {}), 0
    weight_bytes = m.weight.numel() * m.weight.element_size()
    fixed = 0
    if isinstance(m, WSConv2d):  # the standardized weight (+ its graph when the weight trains)
        fixed = weight_bytes + (weight_bytes + m.out_channels * m.weight.element_size() if w else 0)
    elif isinstance(m, (QuantizedConv2d, QuantizedLinear)):  # decoded weight, native fallback
        fixed = weight_bytes
    return paper, {x.key: x.nbytes}, fixed


def _norm(m: nn.Module, x: TracedTensor, batch_stats: bool, fresh: Any) -> Saved:
    g, b = _trains(m.weight), _trains(m.bias)
    paper = x.paper if g else 0
    if isinstance(m, EfficientBatchNorm2d):
        return paper, ({x.key: x.nbytes} if g else {}), 0
    if isinstance(m, EfficientGroupNorm) and not (x.rg or g):  # β only: recomputing, saves nothing
        return paper, {}, 0
    if not (x.rg or g or b):
        return paper, {}, 0
    if isinstance(m, nn.GroupNorm):  # input + per-group mean and 1/std
        return paper, {x.key: x.nbytes, fresh: 2 * m.num_groups * x.es}, 0
    return paper, {x.key: x.nbytes}, (2 * m.num_features * x.es if batch_stats else 0)


def _leaf_rule(m: nn.Module, x: TracedTensor, y: TracedTensor, training: bool, fresh: Any) -> tuple:
    """(kind, paper saved, full saved, fixed, paper working) of a leaf module."""
    kind, inplace = type(m).__name__, bool(getattr(m, "inplace", False))
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        groups = m.groups if isinstance(m, nn.Conv2d) else 1
        return (kind, *_linear_op(m, x), x.paper + y.paper // groups)
    if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)):
        batch_stats = isinstance(m, nn.modules.batchnorm._BatchNorm) and (
            training or m.running_mean is None)  # fmt: skip
        return (kind, *_norm(m, x, batch_stats, fresh), x.paper)
    if isinstance(m, (nn.ReLU, nn.ReLU6)):
        if not x.rg:
            return kind, 0, {}, 0, x.paper
        if isinstance(m, (EfficientReLU, EfficientReLU6)):
            full = {(*fresh, "mask", x.numel): _mask_bytes(x.numel)}
        elif isinstance(m, nn.ReLU6):  # hardtanh keeps its input (a copy when in place)
            full = {fresh if inplace else x.key: x.nbytes}
        else:  # relu keeps its output
            full = {y.key: y.nbytes}
        return kind, _mask_bytes(x.numel), full, 0, x.paper
    if isinstance(m, _SAVES_INPUT + _SAVES_OUTPUT):
        key = y.key if isinstance(m, _SAVES_OUTPUT) else (fresh if inplace else x.key)
        return kind, (x.paper if x.rg else 0), ({key: x.nbytes} if x.rg else {}), 0, x.paper
    if isinstance(m, nn.Dropout):  # a 32-bit mask in training mode
        keep = x.rg and training and m.p > 0
        return kind, 0, ({fresh: x.nbytes} if keep else {}), 0, x.paper
    if isinstance(m, nn.AvgPool2d):  # native avg-pool keeps its input; tiled efficient: nothing
        k = m.kernel_size
        tiled = (isinstance(m, EfficientAvgPool2d) and isinstance(k, int)
                 and m.stride in (k, (k, k)) and m.padding in (0, (0, 0)) and not m.ceil_mode
                 and m.divisor_override is None)  # fmt: skip
        return kind, 0, ({x.key: x.nbytes} if x.rg and not tiled else {}), 0, x.paper + y.paper
    if isinstance(m, _SAVES_NOTHING):
        return kind, 0, {}, 0, x.paper + y.paper
    raise ConfigError(
        f"no memory rule for module type {kind}; known: conv, linear, batch/group norm, ReLU, "
        "ReLU6, h-swish, h-sigmoid, sigmoid, SiLU, GELU, tanh, dropout, pooling, upsampling, "
        "identity, flatten, squeeze-and-excitation, lite residual"
    )


class MemoryTracer:
    """Forward hooks that record one row per leaf module (one per op of squeeze-and-excitation)
    and the tensors that enclosing blocks keep alive."""

    def __init__(self, model: nn.Module) -> None:
        self.names = {m: n for n, m in model.named_modules()}
        self.training = {m: m.training for m in model.modules()}
        self.rows: list[TracedRow] = []
        self.held: list[tuple[int, Any, int]] = []  # (paper bytes, key, full bytes)
        self.marks: dict[nn.Module, list[int]] = {}
        self.alive: list[torch.Tensor] = []  # keeps every traced storage, hence every key, unique
        self.counter = itertools.count()
        self.inside_se = 0
        self.last: TracedTensor | None = None

    def fresh(self) -> tuple[str, int]:
        return ("new", next(self.counter))

    def tensor(self, t: torch.Tensor) -> TracedTensor:
        self.alive.append(t)
        key = ("storage", t.device, t.untyped_storage().data_ptr())
        per_image = t.numel() // t.shape[0]
        return TracedTensor(key, per_image, tuple(t.shape[1:]), t.requires_grad, t.element_size())

    def add(self, row: TracedRow, extra_held: tuple[tuple[int, Any, int], ...] = ()) -> None:
        held = [*self.held, *extra_held]
        row.held = sum(h[0] for h in held)
        row.held_full = {h[1]: h[2] for h in held}
        self.rows.append(row)
        self.last = row.y

    def attach(self, model: nn.Module) -> list[Any]:
        handles = []
        for m in model.modules():
            if isinstance(m, SqueezeExcite):
                handles += [m.register_forward_pre_hook(self._enter_se),
                            m.register_forward_hook(self._exit_se)]  # fmt: skip
            elif isinstance(m, MBConv):
                handles += [m.register_forward_pre_hook(self._enter_block),
                            m.register_forward_hook(self._exit_block)]  # fmt: skip
                if isinstance(m, LiteResidualMBConv):
                    handles.append(m.project.register_forward_hook(self._main_done))
            elif isinstance(m, LiteResidual):
                handles.append(m.register_forward_hook(self._exit_branch))
            elif next(m.children(), None) is None and not isinstance(m, _SKIPPED):
                handles.append(m.register_forward_hook(self._leaf))
        return handles

    def _leaf(self, m: nn.Module, args: tuple, out: torch.Tensor) -> None:
        if self.inside_se:
            return
        x, y = self.tensor(args[0]), self.tensor(out)
        kind, *rule = _leaf_rule(m, x, y, self.training[m], self.fresh())
        self.add(TracedRow(self.names[m], kind, x, y, *rule))

    def _enter_block(self, m: MBConv, args: tuple) -> None:
        self.marks.setdefault(m, []).append(len(self.held))
        if m.use_residual or isinstance(m, LiteResidualMBConv):  # residual / branch input
            x = self.tensor(args[0])
            self.held.append((x.paper, x.key, x.nbytes))

    def _main_done(self, m: nn.Module, args: tuple, out: torch.Tensor) -> None:
        y = self.tensor(out)  # the main branch's output waits for the lite residual's
        self.held.append((y.paper, y.key, y.nbytes))

    def _exit_block(self, m: MBConv, args: tuple, out: torch.Tensor) -> None:
        del self.held[self.marks[m].pop() :]

    def _exit_branch(self, m: LiteResidual, args: tuple, out: torch.Tensor) -> None:
        x, y = self.last, self.tensor(out)
        if x is not None and x.shape != y.shape:  # bilinear upsampling keeps no tensor
            row = TracedRow(f"{self.names[m]}.upsample", "interpolate", x, y, 0, {}, 0,
                            x.paper + y.paper)  # fmt: skip
            self.add(row)

    def _enter_se(self, m: SqueezeExcite, args: tuple) -> None:
        self.inside_se += 1

    def _exit_se(self, m: SqueezeExcite, args: tuple, out: torch.Tensor) -> None:
        """Squeeze-and-excitation op by op: mean → reduce → relu → expand → h-sigmoid → x · gate
        (``torch.relu`` keeps its output, ``hardsigmoid`` its input, the product each factor the
        other factor's gradient needs); ``x`` stays alive until the product."""
        self.inside_se -= 1
        x, y, name = self.tensor(args[0]), self.tensor(out), self.names[m]
        c, mid = x.shape[0], m.reduce.out_channels

        def t(n: int, rg: bool) -> TracedTensor:
            return TracedTensor(self.fresh(), n, (n, 1, 1), rg, x.es)

        def op(step: str, kind: str, a: TracedTensor, b: TracedTensor, saved: Saved, working: int,
               keep_x: bool = True) -> None:  # fmt: skip
            row = TracedRow(f"{name}.{step}", kind, a, b, *saved, working)
            self.add(row, ((x.paper, x.key, x.nbytes),) if keep_x else ())

        hid_rg = x.rg or _trains(m.reduce.weight) or _trains(m.reduce.bias)
        gate_rg = hid_rg or _trains(m.expand.weight) or _trains(m.expand.bias)
        pooled, h_pre, hidden = t(c, x.rg), t(mid, hid_rg), t(mid, hid_rg)
        g_pre, gate = t(c, gate_rg), t(c, gate_rg)
        op("pool", "mean", x, pooled, (0, {}, 0), x.paper + pooled.paper, keep_x=False)
        op("reduce", type(m.reduce).__name__, pooled, h_pre, _linear_op(m.reduce, pooled),
           pooled.paper + h_pre.paper)  # fmt: skip
        relu: Saved = (_mask_bytes(mid), {hidden.key: hidden.nbytes}, 0) if hid_rg else (0, {}, 0)
        op("relu", "relu", h_pre, hidden, relu, h_pre.paper)
        op("expand", type(m.expand).__name__, hidden, g_pre, _linear_op(m.expand, hidden),
           hidden.paper + g_pre.paper)  # fmt: skip
        sigmoid: Saved = (g_pre.paper, {g_pre.key: g_pre.nbytes}, 0) if gate_rg else (0, {}, 0)
        op("gate", "hardsigmoid", g_pre, gate, sigmoid, g_pre.paper)
        keep = ([x] if gate_rg else []) + ([gate] if x.rg else [])
        scale: Saved = (sum(k.paper for k in keep), {k.key: k.nbytes for k in keep}, 0)
        op("scale", "mul", x, y, scale, x.paper + gate.paper, keep_x=False)
