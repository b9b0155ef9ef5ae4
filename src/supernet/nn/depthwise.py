"""Depthwise convolution whose weight gradient is computed densely on small feature maps (CPU).

Why this exists: on CPU, oneDNN's weight gradient for depthwise kernels larger than 3x3 runs at
a tenth or less of its forward speed. In a training step of ``mbv3-tiny``'s largest subnet
(batch 128, 32 px, channels_last, 2 threads) the backward of the 7x7 depthwise convolutions
took ~130 of ~180 ms of ``convolution_backward``, on 8x8, 4x4 and 2x2 maps. On maps that small a
depthwise convolution is, per channel, a small dense matrix ``T_c`` (output pixels x input
pixels) whose entries are kernel taps, and the weight gradient is

    dL/dw[c, tap] = sum over (o, p) with tap(o, p) = tap of M_c[o, p],
    M_c = g_c^T x_c  (g_c: [N, H_out W_out], x_c: [N, H W]),

one batched matrix product over channels plus a fixed scatter of its entries onto the taps —
GEMM speed instead of oneDNN's depthwise backward kernel. The forward and the input gradient
stay oneDNN's (they are fast). No paper to cite: it is the convolution written as a matrix
product (im2col's transpose), applied where the matrix is small.

Used by :class:`~supernet.nn.elastic.ElasticDepthwiseConv2d` while training on CPU; elsewhere
(CUDA, no gradient for the weight, dtypes other than float32, maps where the dense product is
slower) :func:`depthwise_conv2d` is ``F.conv2d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Use the dense weight gradient when the per-channel matrix has at most this many input pixels per
# kernel tap: H*W <= ratio * k*k. Measured on the 2-core VM (batch 128, channels_last; native /
# dense time): 7x7 on 8x8 maps 2.3-2.5x, 4x4 5-7x, 2x2 7x, 7x7 stride 2 on 8x8 3.5x; 5x5 on 4x4
# 3.2-4.3x, on 8x8 1.0x; 3x3 on 2x2 2.9x, on 4x4 0.1x (oneDNN's 3x3 path is fast); 7x7 on 16x16
# 0.4x. At batch 16 (ofa-mbv3): 7x7 on 5x5 21x, 5x5 on 5x5 3.3x, 7x7 on 10x10 0.9x.
# Other kernel sizes were not measured: native.
_DENSE_PIXELS_PER_TAP = {5: 1.5, 7: 1.5}
_TAPS: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
_enabled = True


def set_dense_weight_grad(enabled: bool) -> bool:
    """Turn the dense weight gradient on or off process-wide (on by default); returns the
    previous setting. Off, :func:`depthwise_conv2d` is always ``F.conv2d`` (the benches' baseline;
    also for bit-for-bit comparisons with runs made before it existed)."""
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    return previous


def uses_dense_weight_grad(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`depthwise_conv2d` computes the weight gradient of ``weight`` ``[C, 1, k, k]``
    on input ``x`` ``[N, C, H, W]`` densely: decided by kernel size and input map size alone (the
    rule above ``_DENSE_PIXELS_PER_TAP``), on CPU, in float32, with gradients on."""
    if not (_enabled and weight.requires_grad and torch.is_grad_enabled()):
        return False
    k = weight.shape[-1]
    return (
        x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and weight.shape[-2] == k
        and x.shape[-2] * x.shape[-1] <= _DENSE_PIXELS_PER_TAP.get(k, 0.0) * k * k
    )


def depthwise_conv2d(
    x: torch.Tensor, weight: torch.Tensor, stride: int = 1, padding: int = 0
) -> torch.Tensor:
    """``F.conv2d(x, weight, None, stride, padding, 1, groups=C)``, with the weight gradient
    computed densely where that is faster (:func:`uses_dense_weight_grad`).

    Shapes: ``x`` ``[N, C, H, W]``, ``weight`` ``[C, 1, k, k]`` → ``[N, C, H_out, W_out]``.
    Same values and gradients as ``F.conv2d`` up to float rounding (summation order).
    """
    if uses_dense_weight_grad(x, weight):
        return _DenseGradDepthwise.apply(x, weight, stride, padding)
    return F.conv2d(x, weight, None, stride, padding, 1, x.shape[1])


def dense_weight_grad(
    x: torch.Tensor, grad_out: torch.Tensor, kernel_size: int, stride: int, padding: int
) -> torch.Tensor:
    """The depthwise convolution's weight gradient ``[C, 1, k, k]`` as one batched matrix
    product per channel (module doc). ``x``: ``[N, C, H, W]``; ``grad_out``:
    ``[N, C, H_out, W_out]``; any memory format."""
    n, c, h, w = x.shape
    ho, wo = grad_out.shape[-2:]
    flat, tap = _tap_index(h, w, ho, wo, kernel_size, stride, padding, x.device)
    # [C, N, pixels], contiguous: bmm on the strided channels_last views is ~6x slower here.
    xm = x.permute(1, 0, 2, 3).reshape(c, n, h * w).contiguous()
    gm = grad_out.permute(1, 0, 2, 3).reshape(c, n, ho * wo).contiguous()
    pairs = torch.bmm(gm.transpose(1, 2), xm).view(c, ho * wo * h * w)
    out = torch.zeros(c, kernel_size * kernel_size, dtype=x.dtype, device=x.device)
    out.index_add_(1, tap, pairs.index_select(1, flat))
    return out.view(c, 1, kernel_size, kernel_size)


def _tap_index(
    h: int, w: int, ho: int, wo: int, k: int, stride: int, padding: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """For the flattened (output pixel, input pixel) pairs that a kernel tap connects: their
    indices into ``[H_out W_out * H W]`` and the tap (``i * k + j``) of each. Cached per shape."""
    key = (h, w, ho, wo, k, stride, padding, device)
    hit = _TAPS.get(key)
    if hit is None:
        i = torch.arange(h).view(1, 1, h, 1) - torch.arange(ho).view(ho, 1, 1, 1) * stride + padding
        j = torch.arange(w).view(1, 1, 1, w) - torch.arange(wo).view(1, wo, 1, 1) * stride + padding
        valid = ((i >= 0) & (i < k) & (j >= 0) & (j < k)).reshape(-1)
        flat = valid.nonzero().squeeze(1)
        tap = (i * k + j).expand(ho, wo, h, w).reshape(-1)[flat]
        hit = _TAPS[key] = (flat.to(device), tap.to(device))
    return hit


class _DenseGradDepthwise(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, stride, padding):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, None, stride, padding, 1, x.shape[1])

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        s, p = ctx.stride, ctx.padding
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, [s, s], [p, p], [1, 1], False, [0, 0], x.shape[1],
                [True, False, False],
            )[0]  # fmt: skip
        if ctx.needs_input_grad[1]:
            grad_w = dense_weight_grad(x, grad_out, weight.shape[-1], s, p)
        return grad_x, grad_w, None, None
