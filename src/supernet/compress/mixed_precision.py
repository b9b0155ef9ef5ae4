"""Mixed-precision fake quantization: every convolution and linear layer of a subnet with its own
weight and activation bit width (2 to 8 bits), and the model size such a policy gives.

What is used: PyTorch's maintained fake-quantize ops with straight-through gradients,
``torch.fake_quantize_per_channel_affine`` for weights (symmetric, per output channel, scale =
max |w| / (2^(b-1) - 1), recomputed at every forward so fine-tuning moves it) and
``torch.fake_quantize_per_tensor_affine`` for each layer's input activations (asymmetric, per
tensor, ``[0, 2^b - 1]``). The activation ranges come from ``torch.ao``'s ``HistogramObserver``
run once on calibration images through the float subnet; its clipping search (least L2
quantization error) is run for each bit width, with its number of destination bins set to 2^b.
(:mod:`supernet.quant` is the int8 PT2E path to ``.tflite``: its quantizer and the LiteRT
converter take 8-bit integers only, so it cannot express 2-7-bit layers.)

BatchNorm is folded into the convolutions first (:func:`supernet.nn.fold_batchnorm`), so the
weights quantized are the ones an integer kernel would use.

Reference: HAQ (Wang et al., CVPR'19, arXiv 1811.08886), Sec. 3.2 (linear quantization with
a clipping range per layer, per-layer weight and activation bits); Krishnamoorthi (arXiv
1806.08342), Sec. 2 (per-channel symmetric weights, asymmetric activations).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from supernet.errors import ConfigError
from supernet.nn import fold_batchnorm
from supernet.nn.blocks import DepthwiseConv2d

__all__ = [
    "BITS",
    "FakeQuantLayer",
    "LayerInfo",
    "attach_fake_quant",
    "fake_quantize_weight",
    "lower_bits",
    "quant_layers",
    "set_bits",
    "weight_bytes",
]

BITS = tuple(range(2, 9))
"""Bit widths an action may choose (HAQ, arXiv 1811.08886, Sec. 3.2: 2 to 8 bits)."""


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or int(bits) != bits or bits not in BITS:
        raise ConfigError(f"bit width {bits!r} is not allowed; choose from {list(BITS)}")


def fake_quantize_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric per-output-channel fake quantization at ``bits`` bits (straight-through
    gradient): at most ``2^bits - 1`` distinct values per output channel.

    Shapes: ``[C_out, ...]`` → same.

    Raises:
        ConfigError: ``bits`` is not in :data:`BITS`.
    """
    _check_bits(bits)
    qmax = 2 ** (bits - 1) - 1
    scale = weight.detach().abs().flatten(1).amax(1).clamp_min(1e-12) / qmax
    zero = torch.zeros(weight.shape[0], dtype=torch.int32, device=weight.device)
    return torch.fake_quantize_per_channel_affine(weight, scale.float(), zero, 0, -qmax, qmax)


@dataclass(frozen=True)
class LayerInfo:
    """One quantizable layer (HAQ's state, arXiv 1811.08886, Sec. 3.1, Eq. 1-2).

    Attributes:
        index, name: position and module path. kind: ``conv`` or ``linear``.
        in_channels, out_channels, kernel_size, stride: of the layer (1 for linear).
        feature_size: input feature map side in pixels (1 for linear).
        weights: weight elements. bias_bytes: fp32 bias bytes (0 without bias).
        activations: input elements per image (bits × activations = its input's traffic).
        depthwise: whether it is a depthwise conv.
    """

    index: int
    name: str
    kind: str
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    feature_size: int
    weights: int
    bias_bytes: int
    activations: int
    depthwise: bool


class FakeQuantLayer(nn.Module):
    """A conv or linear layer with fake-quantized weights and input activations.

    ``weight_bits`` / ``act_bits`` may be changed between forwards; ``None`` leaves that side
    in float32. Shapes: as the wrapped layer.
    """

    def __init__(self, layer: nn.Conv2d | nn.Linear) -> None:
        super().__init__()
        from torch.ao.quantization.observer import HistogramObserver

        self.layer = layer
        self.weight_bits: int | None = None
        self.act_bits: int | None = None
        # 512 bins (not 2048): the clipping search per bit width runs ~3x faster, same ranges
        # within 3% on ReLU activations (measured here)
        self.observer = HistogramObserver(bins=512, dtype=torch.quint8, quant_min=0, quant_max=255)
        self.calibrating = False
        self.act_qparams: dict[int, tuple[float, int]] = {}

    def activation_qparams(self, bits: int) -> tuple[float, int]:
        """(scale, zero point) of the input activations at ``bits`` bits (cached)."""
        if bits not in self.act_qparams:
            observer = copy.deepcopy(self.observer)
            observer.quant_min, observer.quant_max = 0, 2**bits - 1
            observer.dst_nbins = 2**bits  # the clipping search for 2^bits levels
            scale, zero = observer.calculate_qparams()
            self.act_qparams[bits] = (float(scale.reshape(-1)[0]), int(zero.reshape(-1)[0]))
        return self.act_qparams[bits]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating:
            self.observer(x.detach())
        elif self.act_bits is not None:
            scale, zero = self.activation_qparams(self.act_bits)
            x = torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, 2**self.act_bits - 1)
        w = self.layer.weight
        if self.weight_bits is not None:
            w = fake_quantize_weight(w, self.weight_bits)
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, w, self.layer.bias)
        return self.layer._conv_forward(x, w, self.layer.bias)


def quant_layers(model: nn.Module) -> list[tuple[str, FakeQuantLayer]]:
    """The :class:`FakeQuantLayer` modules of ``model`` in forward (definition) order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, FakeQuantLayer)]


@torch.no_grad()
def attach_fake_quant(
    model: nn.Module, calib_images: torch.Tensor
) -> tuple[nn.Module, list[LayerInfo]]:
    """A BN-folded copy of ``model`` whose every ``nn.Conv2d`` / ``nn.Linear`` is a
    :class:`FakeQuantLayer` (float32 until :func:`set_bits`), its activation observers run on
    ``calib_images``; and the layers' descriptions. ``model`` is not changed.

    Shapes: ``calib_images`` ``[N, C, R, R]`` at the subnet's resolution.

    Raises:
        ConfigError: ``model`` has no conv or linear layer, or a layer type that cannot be
            fake-quantized (named, with the supported ones).
    """
    quantized = fold_batchnorm(copy.deepcopy(model).eval())
    kinds = (nn.Conv2d, nn.Linear)
    targets = [(n, m) for n, m in quantized.named_modules() if isinstance(m, kinds)]
    plain = (*kinds, DepthwiseConv2d)  # not weight-standardized convs
    odd = [f"{n} ({type(m).__name__})" for n, m in targets if type(m) not in plain]
    if odd or not targets:
        raise ConfigError(
            f"cannot fake-quantize {odd or type(model).__name__ + ' (no layer)'}: supported "
            "layers are torch.nn.Conv2d and torch.nn.Linear (BatchNorm folded first)"
        )
    for name, layer in targets:
        parent, _, attr = name.rpartition(".")
        setattr(quantized.get_submodule(parent) if parent else quantized, attr,
                FakeQuantLayer(layer))  # fmt: skip
    layers = quant_layers(quantized)
    shapes: dict[str, torch.Size] = {}
    hooks = [m.register_forward_pre_hook(lambda _m, i, n=n: shapes.__setitem__(n, i[0].shape))
             for n, m in layers]  # fmt: skip
    for _, m in layers:
        m.calibrating = True
    try:
        quantized(calib_images)
    finally:
        for h in hooks:
            h.remove()
        for _, m in layers:
            m.calibrating = False
    infos = []
    for i, (name, m) in enumerate(layers):
        layer, shape = m.layer, shapes[name]
        conv = isinstance(layer, nn.Conv2d)
        infos.append(LayerInfo(
            index=i, name=name, kind="conv" if conv else "linear",
            in_channels=layer.in_channels if conv else layer.in_features,
            out_channels=layer.out_channels if conv else layer.out_features,
            kernel_size=layer.kernel_size[0] if conv else 1,
            stride=layer.stride[0] if conv else 1,
            feature_size=int(shape[-1]) if conv else 1,
            weights=layer.weight.numel(),
            bias_bytes=4 * layer.bias.numel() if layer.bias is not None else 0,
            activations=int(torch.Size(shape[1:]).numel()),
            depthwise=conv and layer.groups > 1 and layer.groups == layer.in_channels,
        ))  # fmt: skip
    return quantized, infos


def set_bits(
    model: nn.Module, weight_bits: Sequence[int] | None, act_bits: Sequence[int] | None
) -> nn.Module:
    """Set each :class:`FakeQuantLayer`'s bits (in :func:`quant_layers` order); ``None`` for a
    whole side keeps it float32. Returns ``model``.

    Raises:
        ConfigError: a sequence of the wrong length or a width outside :data:`BITS`.
    """
    layers = quant_layers(model)
    for bits in (weight_bits, act_bits):
        if bits is not None:
            if len(bits) != len(layers):
                raise ConfigError(f"a policy needs {len(layers)} bit widths, got {len(bits)}")
            for b in bits:
                _check_bits(b)
    for i, (_, m) in enumerate(layers):
        m.weight_bits = None if weight_bits is None else int(weight_bits[i])
        m.act_bits = None if act_bits is None else int(act_bits[i])
    return model


def weight_bytes(layers: Sequence[LayerInfo], weight_bits: Sequence[int]) -> float:
    """Model size in bytes: ``sum(weights × bits) / 8`` plus the float32 biases.

    Reference: HAQ, arXiv 1811.08886, Sec. 4.3 (model size of a mixed-precision policy).
    """
    return sum(info.weights * b / 8 + info.bias_bytes
               for info, b in zip(layers, weight_bits, strict=True))  # fmt: skip


def lower_bits(
    bits: Sequence[int], cost_per_bit: Sequence[float], fixed: float, budget: float
) -> list[int]:
    """Lower the widths one bit per layer in turn (first to last, again and again, never below
    :data:`BITS`' least) until ``fixed + sum(cost_per_bit × bits) <= budget``.

    Raises:
        ConfigError: the budget is below the cost with every layer at the least width (named).

    Reference: HAQ, arXiv 1811.08886, Sec. 3.3 ("we sequentially decrease the bitwidth of each
    layer until the constraint is finally satisfied").
    """
    out = [int(b) for b in bits]
    least = fixed + BITS[0] * sum(cost_per_bit)
    if least > budget:
        raise ConfigError(
            f"budget {budget:,.0f} is below the smallest reachable {least:,.0f} (every layer "
            f"at {BITS[0]} bits)"
        )

    def cost() -> float:
        return fixed + sum(c * b for c, b in zip(cost_per_bit, out, strict=True))

    while cost() > budget and any(b > BITS[0] for b in out):
        for i in range(len(out)):
            if out[i] > BITS[0] and cost() > budget:
                out[i] -= 1
    return out
