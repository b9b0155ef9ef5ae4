"""Memory-efficient modules: drop-in subclasses that route frozen layers through the
saving-nothing autograd functions of :mod:`supernet.transfer.functions`.

Each efficient class subclasses the standard module it replaces (``nn.Conv2d``, ``WSConv2d``,
``nn.Linear``, ``nn.ReLU``, ``nn.ReLU6``, ``nn.BatchNorm2d`` via :class:`FrozenBatchNorm2d`,
``nn.GroupNorm``, ``nn.AvgPool2d``, ``nn.AdaptiveAvgPool2d``) and adds no parameter or persistent
buffer, so :func:`make_memory_efficient` swaps them in place by changing the class: parameter
names, ``state_dict`` keys, optimizer references and ``isinstance`` checks stay valid. A layer
whose weight trains runs natively (autograd must keep its input for the weight gradient).

What each layer keeps for backward (plain autograd → here; 32-bit floats unless said):

- conv / linear with a frozen weight: its input (and weight) whenever any gradient flows →
  nothing (also with a trainable bias);
- ReLU / ReLU6: its output → 1 bit per element;
- frozen-statistics BN: its input → nothing, or its input when γ trains;
- frozen ``WSConv2d``: the standardization graph, rebuilt every step → nothing (the standardized
  weight is computed once and cached);
- ``GroupNorm``: input, mean, 1/std → nothing when only β trains (see
  :class:`EfficientGroupNorm`);
- 2×2 or global average pooling: its input → nothing.

h-swish, h-sigmoid, sigmoid and the squeeze-and-excitation product keep their native behaviour
(32-bit inputs).

Reference: TinyTL (Cai, Gan, Zhu, Han; NeurIPS'20; arXiv 2007.11622), Sec. 2 (what backward
needs) and Sec. 3.1 (update biases only: no stored activations for frozen weights).
"""

from __future__ import annotations

import torch
from torch import nn

from supernet.nn.blocks import WSConv2d, standardize_weight
from supernet.transfer.frozen_bn import FrozenBatchNorm2d
from supernet.transfer.functions import (
    frozen_batch_norm,
    frozen_conv2d,
    frozen_linear,
    packed_relu,
    recomputing_group_norm,
    shape_only_avg_pool2d,
)

__all__ = [
    "EfficientAdaptiveAvgPool2d",
    "EfficientAvgPool2d",
    "EfficientBatchNorm2d",
    "EfficientConv2d",
    "EfficientGroupNorm",
    "EfficientLinear",
    "EfficientReLU",
    "EfficientReLU6",
    "EfficientWSConv2d",
    "make_memory_efficient",
]


def _zero_padded(conv: nn.Conv2d) -> bool:
    return conv.padding_mode == "zeros" and not isinstance(conv.padding, str)


class EfficientConv2d(nn.Conv2d):
    """``nn.Conv2d`` that saves nothing for backward while its weight is frozen (the input
    gradient comes from the weight; a trainable bias gets ``Σ grad_out``).

    Shapes: as ``nn.Conv2d``. Saved bytes: 0 when frozen, native otherwise.
    """

    def frozen_weight(self) -> torch.Tensor:
        """The weight without autograd history (re-read in backward, never saved)."""
        return self.weight.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.requires_grad or not _zero_padded(self):
            return super().forward(x)
        return frozen_conv2d(x, self, self.bias)


class EfficientWSConv2d(WSConv2d):
    """:class:`WSConv2d` whose standardized weight is computed once while the weight is frozen
    (kept in the non-persistent buffer ``standardized_weight``, recomputed only when the weight,
    its dtype or device changes), and which then saves nothing for backward.

    Shapes: as ``nn.Conv2d``. Memory: one float copy of the weight (the cache); saved bytes 0.
    Reference: weight standardization, arXiv 1903.10520, Eq. 5.
    """

    def frozen_weight(self) -> torch.Tensor:
        w = self.weight
        key = (w._version, w.data_ptr(), w.dtype, w.device)
        if getattr(self, "_standardized_key", None) != key:
            with torch.no_grad():
                self.register_buffer("standardized_weight", standardize_weight(w), persistent=False)
            self._standardized_key = key
        return self.standardized_weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.requires_grad or not _zero_padded(self):
            return super().forward(x)
        return frozen_conv2d(x, self, self.bias)


class EfficientLinear(nn.Linear):
    """``nn.Linear`` that saves nothing for backward while its weight is frozen.

    Shapes: ``[..., in_features]`` → ``[..., out_features]``. Saved bytes: 0 when frozen.
    """

    def frozen_weight(self) -> torch.Tensor:
        """The weight without autograd history (re-read in backward, never saved)."""
        return self.weight.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.requires_grad:
            return super().forward(x)
        return frozen_linear(x, self, self.bias)


class EfficientReLU(nn.ReLU):
    """ReLU that saves a bit-packed mask (1 bit per element) instead of its 32-bit output.
    Always out of place (``inplace`` is ignored).

    Shapes: ``[...]`` → same. Saved bytes: ``ceil(numel / 8)``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return packed_relu(x)


class EfficientReLU6(nn.ReLU6):
    """ReLU6 that saves a bit-packed mask of ``0 < x < 6`` (1 bit per element). Out of place.

    Shapes: ``[...]`` → same. Saved bytes: ``ceil(numel / 8)``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return packed_relu(x, 6.0)


class EfficientBatchNorm2d(FrozenBatchNorm2d):
    """Frozen-statistics batch norm as a per-channel affine op that saves nothing for backward
    unless γ trains (then its input).

    Shapes: ``[B, C, H, W]`` → same. Saved bytes: 0, or ``4 · numel`` when γ trains.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return frozen_batch_norm(x, self)


class EfficientGroupNorm(nn.GroupNorm):
    """Group norm by the engine chosen by measurement: native ``F.group_norm`` while its input or
    γ needs a gradient (both need the input: the input gradient needs x̂), and
    :func:`recomputing_group_norm` when only β trains (it then saves nothing; native would keep
    the input).

    Measured on the 2-core development machine (shared with other jobs, so timings are ±30 %;
    one CPU thread, minimum over 600 forward+backward passes of one layer with γ frozen, input
    requiring grad; 8×64×14², 8×96×7², 8×384×4²): native 108 / 78 / 108 µs, a
    recomputing function everywhere 170 / 128 / 171 µs (a Python autograd node plus a statistics
    pass). Saved bytes of one step of a 16-block GN subnet (batch 8, 28×28; unique storages,
    parameters excluded): recomputing everywhere kept 7.44 MB for ``bias+last`` vs 7.58 MB native
    (``tinytl-l+b`` 8.67 vs 8.82, ``full`` 13.77 vs 13.81); this hybrid keeps 7.48 MB: nearly all
    of the gain (the stem norm's input when only β trains) at native speed everywhere else.

    Shapes: ``[B, C, ...]`` → same. Saved bytes: 0 when only β trains and the input needs no
    gradient; native (input + mean + 1/std) otherwise.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias_only = (
            torch.is_grad_enabled() and not x.requires_grad
            and (self.weight is None or not self.weight.requires_grad)
            and self.bias is not None and self.bias.requires_grad
        )  # fmt: skip
        return recomputing_group_norm(x, self) if bias_only else super().forward(x)


class EfficientAvgPool2d(nn.AvgPool2d):
    """``nn.AvgPool2d`` that saves nothing for backward when its windows do not overlap (kernel =
    stride, no padding, floor mode; the lite residual's 2×2 pooling); native otherwise.

    Shapes: ``[B, C, H, W]`` → ``[B, C, H // k, W // k]``. Saved bytes: 0 (native: the input).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        tiled = isinstance(k, int) and self.stride in (k, (k, k)) and self.padding in (0, (0, 0))
        if not tiled or self.ceil_mode or self.divisor_override is not None:
            return super().forward(x)
        return shape_only_avg_pool2d(x, k)


class EfficientAdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    """Global ``nn.AdaptiveAvgPool2d(1)`` that saves nothing for backward; native otherwise.

    Shapes: ``[B, C, H, W]`` → ``[B, C, 1, 1]``. Saved bytes: 0.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.output_size not in (1, (1, 1)):
            return super().forward(x)
        return shape_only_avg_pool2d(x, None)


_SWAPS: dict[type[nn.Module], type[nn.Module]] = {
    nn.Conv2d: EfficientConv2d,
    WSConv2d: EfficientWSConv2d,
    nn.Linear: EfficientLinear,
    nn.ReLU: EfficientReLU,
    nn.ReLU6: EfficientReLU6,
    FrozenBatchNorm2d: EfficientBatchNorm2d,
    nn.GroupNorm: EfficientGroupNorm,
    nn.AvgPool2d: EfficientAvgPool2d,
    nn.AdaptiveAvgPool2d: EfficientAdaptiveAvgPool2d,
}


def make_memory_efficient(model: nn.Module) -> nn.Module:
    """Swap every plain ``Conv2d``, ``WSConv2d``, ``Linear``, ``ReLU``, ``ReLU6``,
    :class:`FrozenBatchNorm2d`, ``GroupNorm``, ``AvgPool2d`` and ``AdaptiveAvgPool2d`` of ``model``
    for its efficient subclass, in place, and return ``model``.

    Only exact types are swapped: subclasses (e.g. 8-bit :mod:`~supernet.transfer.quantize` layers,
    which are efficient already) and batch norms that still use batch statistics are left alone.
    Outputs and gradients are those of plain autograd; ``state_dict`` keys are unchanged.
    Which layers save nothing is decided at each forward from ``requires_grad``, so the trainable
    set may change afterwards.
    """
    for module in model.modules():
        efficient = _SWAPS.get(type(module))
        if efficient is not None:
            module.__class__ = efficient
    return model
