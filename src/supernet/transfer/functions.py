"""Autograd functions that keep only what the gradient really needs (TinyTL's training memory).

Plain autograd saves a convolution's input whenever *anything* about it needs a gradient — also
when only the input gradient is needed and the weight is frozen — and ReLU saves its 32-bit output.
TinyTL (Cai et al., NeurIPS'20, arXiv 2007.11622, Sec. 2-3.1) counts neither: the input gradient
of a linear operator needs its weight, not its input, and ReLU's backward needs one bit per
element. These functions make that accounting real:

- :func:`frozen_conv2d`, :func:`frozen_linear`: frozen weight; save nothing. ``grad_input`` comes
  from the weight, re-read from the module in backward; a trainable bias gets ``grad_out`` summed.
- :func:`packed_relu`: ReLU / ReLU6 saving a bit-packed mask (1 bit per element).
- :func:`frozen_batch_norm`: batch norm with frozen running statistics (a per-channel affine op);
  saves its input only when γ trains.
- :func:`shape_only_avg_pool2d`: non-overlapping or global average pooling that saves nothing
  (native ``avg_pool2d`` keeps its input, though the gradient needs only its shape).
- :func:`recomputing_group_norm`: group norm saving only its input (statistics recomputed in
  backward), and nothing when neither the input nor γ needs a gradient.

Every kept tensor goes through ``ctx.save_for_backward`` (so ``saved_tensors_hooks`` see it); a
weight is never saved — backward re-reads it from the module (``module.frozen_weight()``), so an
8-bit weight is decoded again rather than kept. Every function honours ``ctx.needs_input_grad``:
no input gradient is computed (or saved for) where no earlier layer needs one.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = [
    "FrozenWeightModule",
    "frozen_batch_norm",
    "frozen_conv2d",
    "frozen_linear",
    "pack_bits",
    "packed_relu",
    "recomputing_group_norm",
    "shape_only_avg_pool2d",
    "unpack_bits",
]

_SHIFTS = torch.arange(8, dtype=torch.uint8)


class FrozenWeightModule(Protocol):
    """A conv or linear module whose (effective) weight is frozen: ``frozen_weight()`` returns it
    without autograd history (the parameter, a cached standardized weight, a decoded 8-bit one).
    """

    def frozen_weight(self) -> torch.Tensor: ...


# --- bit packing ----------------------------------------------------------------------------------
def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """Pack a boolean tensor into bytes, 8 elements per byte, little-endian bit order (element
    ``8j + i`` is bit ``i`` of byte ``j``, like ``numpy.packbits(..., bitorder="little")``).

    Shapes: any ``[...]`` with ``n`` elements → ``[ceil(n / 8)]`` uint8 (n / 8 bytes).
    """
    flat = mask.reshape(-1).to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return (flat.view(-1, 8) << _SHIFTS.to(flat.device)).sum(1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: uint8 ``[ceil(n / 8)]`` → boolean tensor of ``shape``."""
    n = 1
    for s in shape:
        n *= s
    bits = (packed.unsqueeze(1) >> _SHIFTS.to(packed.device)) & 1
    return bits.reshape(-1)[:n].view(shape).bool()


# --- frozen conv / linear -------------------------------------------------------------------------
class _FrozenConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, bias: torch.Tensor | None, module: nn.Conv2d) -> Any:
        ctx.module, ctx.input_shape = module, x.shape
        weight = module.frozen_weight()
        return F.conv2d(x, weight, bias, module.stride, module.padding, module.dilation,
                        module.groups)  # fmt: skip

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> Any:
        m = ctx.module
        grad_x = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.nn.grad.conv2d_input(
                ctx.input_shape, m.frozen_weight(), grad_out, m.stride, m.padding, m.dilation,
                m.groups,
            )  # fmt: skip
        if ctx.needs_input_grad[1]:
            grad_bias = grad_out.sum((0, 2, 3))
        return grad_x, grad_bias, None


def frozen_conv2d(x: torch.Tensor, module: nn.Conv2d, bias: torch.Tensor | None) -> torch.Tensor:
    """2-D convolution with ``module.frozen_weight()`` that saves no tensor for backward.

    Shapes: ``[B, C_in, H, W]`` → ``[B, C_out, H', W']`` as ``module``. Only zero padding given as
    ints is supported (the callers fall back to native autograd otherwise). Saved bytes: 0.
    """
    return _FrozenConv2d.apply(x, bias, module)


class _FrozenLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, bias: torch.Tensor | None, module: nn.Linear) -> Any:
        ctx.module = module
        return F.linear(x, module.frozen_weight(), bias)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> Any:
        grad_x = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_out @ ctx.module.frozen_weight()
        if ctx.needs_input_grad[1]:
            grad_bias = grad_out.reshape(-1, grad_out.shape[-1]).sum(0)
        return grad_x, grad_bias, None


def frozen_linear(x: torch.Tensor, module: nn.Linear, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ W.T + b`` with ``W = module.frozen_weight()``, saving no tensor for backward.

    Shapes: ``[..., in_features]`` → ``[..., out_features]``. Saved bytes: 0.
    """
    return _FrozenLinear.apply(x, bias, module)


# --- ReLU with a 1-bit mask -----------------------------------------------------------------------
class _PackedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, upper: float | None) -> Any:
        out = x.clamp(0.0, upper)
        if ctx.needs_input_grad[0]:
            # native relu / hardtanh backward: gradient where 0 < x (< upper)
            mask = x > 0 if upper is None else (x > 0) & (x < upper)
            ctx.save_for_backward(pack_bits(mask))
            ctx.shape = x.shape
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> Any:
        (packed,) = ctx.saved_tensors
        mask = unpack_bits(packed, ctx.shape)
        return grad_out * mask, None


def packed_relu(x: torch.Tensor, upper: float | None = None) -> torch.Tensor:
    """ReLU (``upper=None``) or ReLU6 (``upper=6``) that saves a bit-packed mask for backward.

    Shapes: ``[...]`` → same. Saved bytes: ``ceil(numel / 8)`` (1 bit per element) instead of
    4 bytes per element. Reference: TinyTL, arXiv 2007.11622, Sec. 2 (ReLU needs a binary mask).
    """
    return _PackedReLU.apply(x, upper)


# --- average pooling that needs only shapes -------------------------------------------------------
class _ShapeOnlyAvgPool2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, factor: int | None) -> Any:
        ctx.input_shape, ctx.factor = x.shape, factor
        if factor is None:
            return x.mean((-2, -1), keepdim=True)
        return F.avg_pool2d(x, factor)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> Any:
        if not ctx.needs_input_grad[0]:
            return None, None
        shape, s = ctx.input_shape, ctx.factor
        if s is None:
            return (grad_out / (shape[-2] * shape[-1])).expand(shape).contiguous(), None
        spread = (grad_out / (s * s)).repeat_interleave(s, -2).repeat_interleave(s, -1)
        if tuple(spread.shape) == tuple(shape):
            return spread, None
        grad_x = grad_out.new_zeros(shape)  # floor mode: the last rows / columns got no window
        grad_x[..., : spread.shape[-2], : spread.shape[-1]] = spread
        return grad_x, None


def shape_only_avg_pool2d(x: torch.Tensor, factor: int | None) -> torch.Tensor:
    """Average pooling over ``factor``×``factor`` windows with stride ``factor`` (no padding,
    floor mode), or over the whole map (``factor=None``), saving no tensor for backward.

    Shapes: ``[B, C, H, W]`` → ``[B, C, H // factor, W // factor]`` (``[B, C, 1, 1]``).
    Saved bytes: 0 (native ``avg_pool2d`` keeps its 32-bit input).
    """
    return _ShapeOnlyAvgPool2d.apply(x, factor)


# --- batch norm with frozen statistics ------------------------------------------------------------
class _FrozenBatchNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: Any, bias: Any, module: nn.BatchNorm2d) -> Any:
        ctx.module = module
        if ctx.needs_input_grad[1]:  # dL/dγ = Σ grad · x̂ needs the input
            ctx.save_for_backward(x)
        return F.batch_norm(x, module.running_mean, module.running_var, weight, bias, False, 0.0,
                            module.eps)  # fmt: skip

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> Any:
        m = ctx.module
        shape = (1, -1) + (1,) * (grad_out.dim() - 2)
        invstd = torch.rsqrt(m.running_var + m.eps)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            scale = invstd if m.weight is None else m.weight * invstd
            grad_x = grad_out * scale.view(shape)
        dims = [0, *range(2, grad_out.dim())]
        if ctx.needs_input_grad[1]:
            (x,) = ctx.saved_tensors
            x_hat = (x - m.running_mean.view(shape)) * invstd.view(shape)
            grad_weight = (grad_out * x_hat).sum(dims)
        if ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum(dims)
        return grad_x, grad_weight, grad_bias, None


def frozen_batch_norm(x: torch.Tensor, module: nn.BatchNorm2d) -> torch.Tensor:
    """Batch norm with ``module``'s running statistics (eval-mode statistics, also in training):
    ``y = γ (x - μ) / sqrt(σ² + ε) + β``, a per-channel affine op.

    Shapes: ``[B, C, H, W]`` → same. Saved bytes: 0 when γ is frozen (input and β gradients need
    only γ and σ², re-read from the module); the 32-bit input when γ trains.
    """
    return _FrozenBatchNorm.apply(x, module.weight, module.bias, module)


# --- group norm recomputing its statistics --------------------------------------------------------
class _RecomputingGroupNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: Any, bias: Any, module: nn.GroupNorm) -> Any:
        ctx.module = module
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(x)
        return F.group_norm(x, module.num_groups, weight, bias, module.eps)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> Any:
        m = ctx.module
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        if not (needs_x or needs_weight):
            return None, None, grad_out.sum([0, *range(2, grad_out.dim())]), None
        (x,) = ctx.saved_tensors
        n, c = x.shape[:2]
        hw = x.numel() // (n * c)
        # the fused native kernel is the fastest way to the statistics (it also writes an output)
        _, mean, rstd = torch.ops.aten.native_group_norm(
            x, None, None, n, c, hw, m.num_groups, m.eps
        )
        grad_x, grad_weight, grad_bias = torch.ops.aten.native_group_norm_backward(
            grad_out, x, mean, rstd, m.weight, n, c, hw, m.num_groups,
            [needs_x, needs_weight, needs_bias],
        )  # fmt: skip
        return grad_x, grad_weight, grad_bias, None


def recomputing_group_norm(x: torch.Tensor, module: nn.GroupNorm) -> torch.Tensor:
    """Group norm with ``module``'s groups, γ, β and ε that saves only its input and recomputes
    mean and 1/std in backward; nothing is saved when neither the input nor γ needs a gradient.

    Shapes: ``[B, C, ...]`` → same. Saved bytes: the 32-bit input, or 0 when only β trains and the
    input needs no gradient (native group norm saves the input in both cases, plus mean and 1/std,
    ``2 · B · groups`` floats). Reference: Wu & He, "Group Normalization" (arXiv 1803.08494),
    Eq. 1-3.
    """
    return _RecomputingGroupNorm.apply(x, module.weight, module.bias, module)
