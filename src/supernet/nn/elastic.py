"""Elastic operators: one set of weights, many active shapes.

- Elastic kernel size: the largest depthwise kernel is stored; a smaller kernel is its centre crop
  passed through a learned kernel transformation matrix (7→5, then 5→3), shared by all channels of a
  layer and initialised to the identity. Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791),
  Sec. 3.2 "Elastic Kernel Size", Fig. 3.
- Elastic width (expand ratio): the first ``c`` channels of a layer are active; channels are sorted
  by importance before width is made elastic (:mod:`supernet.nn.sorting`). Sec. 3.2 "Elastic Width".
- Dynamic batch norm: the active channels use the first ``c`` entries of the affine parameters and
  running statistics.

Slicing recomputes nothing while gradients are off and the weights are unchanged: the transformed
kernel is cached per (kernel size, parameter versions) for evaluation and search. Weights must be
changed in place through autograd-visible ops (optimizers and ``load_state_dict`` are); an edit
through ``.data`` bypasses the version counter — call :meth:`clear_cache` after one.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from supernet.nn.blocks import ConvBNAct, MBConv, SqueezeExcite, make_activation
from supernet.space import make_divisible

__all__ = [
    "ElasticBatchNorm2d",
    "ElasticDepthwiseConv2d",
    "ElasticMBConv",
    "ElasticPointwiseConv2d",
    "ElasticSqueezeExcite",
    "mbconv_mid_channels",
]


class ElasticPointwiseConv2d(nn.Module):
    """1x1 convolution whose input channels follow the input and whose output channels are chosen.

    Shapes: ``[B, c_in <= max_in, H, W]`` → ``[B, out_channels <= max_out, H, W]``.
    """

    def __init__(self, max_in: int, max_out: int, *, bias: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in, 1, 1))
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        nn.init.kaiming_normal_(self.weight, mode="fan_out")

    def sliced(
        self, in_channels: int, out_channels: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Active weight ``[out, in, 1, 1]`` and bias ``[out]`` (views of the full tensors)."""
        w = self.weight[:out_channels, :in_channels]
        b = None if self.bias is None else self.bias[:out_channels]
        return w, b

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        w, b = self.sliced(x.shape[1], out_channels)
        return F.conv2d(x, w, b)


class ElasticDepthwiseConv2d(nn.Module):
    """Depthwise convolution with elastic kernel size and channel count.

    Shapes: ``[B, c <= max_channels, H, W]`` → ``[B, c, H / stride, W / stride]``.
    Reference: Once-for-All, arXiv 1908.09791, Sec. 3.2 and Fig. 3 (kernel transformation matrices).
    """

    def __init__(self, max_channels: int, kernel_sizes: tuple[int, ...], *, stride: int) -> None:
        super().__init__()
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        self.stride = stride
        k_max = self.kernel_sizes[-1]
        self.weight = nn.Parameter(torch.empty(max_channels, 1, k_max, k_max))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        # One matrix per step down (e.g. "7to5", "5to3"), acting on the flattened centre crop.
        self.transforms = nn.ParameterDict(
            {
                f"{big}to{small}": nn.Parameter(torch.eye(small * small))
                for big, small in self._steps()
            }
        )
        self._cache: dict[int, tuple[tuple, torch.Tensor]] = {}

    def clear_cache(self) -> None:
        """Drop cached transformed kernels."""
        self._cache.clear()

    def _steps(self) -> list[tuple[int, int]]:
        """Transformation steps from the largest kernel down, e.g. ``[(7, 5), (5, 3)]``."""
        ks = self.kernel_sizes
        return [(ks[i], ks[i - 1]) for i in range(len(ks) - 1, 0, -1)]

    def kernel(self, kernel_size: int) -> torch.Tensor:
        """The full-channel kernel ``[max_channels, 1, k, k]`` for ``kernel_size``.

        Raises:
            ValueError: when ``kernel_size`` is not one of ``kernel_sizes``.
        """
        if kernel_size not in self.kernel_sizes:
            raise ValueError(
                f"kernel_size = {kernel_size} is not allowed; choose from {self.kernel_sizes}"
            )
        if torch.is_grad_enabled():
            self._cache.clear()
            return self._transform(kernel_size)
        # Identity, dtype, device and version of every input tensor: in-place updates (optimizer
        # steps, load_state_dict) bump the version; .to()/.double() swap the storage.
        versions = tuple(
            (p.data_ptr(), p.dtype, p.device, p._version)
            for p in (self.weight, *self.transforms.values())
        )
        hit = self._cache.get(kernel_size)
        if hit is None or hit[0] != versions:
            hit = (versions, self._transform(kernel_size))
            self._cache[kernel_size] = hit
        return hit[1]

    def _transform(self, kernel_size: int) -> torch.Tensor:
        w = self.weight
        for big, small in self._steps():
            if big <= kernel_size:
                break
            start = (big - small) // 2
            crop = w[:, :, start : start + small, start : start + small]
            flat = crop.reshape(-1, small * small)
            w = F.linear(flat, self.transforms[f"{big}to{small}"]).view(-1, 1, small, small)
        return w

    def forward(self, x: torch.Tensor, kernel_size: int) -> torch.Tensor:
        c = x.shape[1]
        w = self.kernel(kernel_size)[:c]
        return F.conv2d(x, w, None, self.stride, kernel_size // 2, 1, c)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """Batch norm over the first ``c`` channels of its parameters and running statistics.

    Shapes: ``[B, c <= num_features, H, W]`` → same.
    Reference: Once-for-All released code ("DynamicBatchNorm2d"); statistics are re-calibrated per
    subnet before evaluation (:mod:`supernet.train.bn`).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        momentum = 0.0 if self.momentum is None else self.momentum
        use_batch = self.training or self.running_mean is None
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked)
        return F.batch_norm(
            x,
            self.running_mean[:c] if self.running_mean is not None else None,
            self.running_var[:c] if self.running_var is not None else None,
            self.weight[:c],
            self.bias[:c],
            use_batch,
            momentum,
            self.eps,
        )


class ElasticSqueezeExcite(nn.Module):
    """Squeeze-and-excitation whose channel count follows the input; the hidden width is
    ``make_divisible(c // 4, 8)``.

    Shapes: ``[B, c <= max_channels, H, W]`` → same.
    """

    reduction = 4

    def __init__(self, max_channels: int) -> None:
        super().__init__()
        max_mid = make_divisible(max_channels // self.reduction, 8)
        self.reduce = ElasticPointwiseConv2d(max_channels, max_mid, bias=True)
        self.expand = ElasticPointwiseConv2d(max_mid, max_channels, bias=True)

    @classmethod
    def mid_channels(cls, channels: int) -> int:
        """SE hidden width for ``channels`` input channels."""
        return make_divisible(channels // cls.reduction, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        s = x.mean((2, 3), keepdim=True)
        s = torch.relu(self.reduce(s, self.mid_channels(c)))
        return x * F.hardsigmoid(self.expand(s, c))


def mbconv_mid_channels(in_channels: int, expand_ratio: float) -> int:
    """Hidden width of an MBConv block: ``make_divisible(round(in_channels * expand_ratio), 8)``.

    The one place the rounding rule lives: supernet blocks, extracted subnets and the analytic
    cost models all call it.
    """
    return make_divisible(round(in_channels * expand_ratio), 8)


class ElasticMBConv(nn.Module):
    """MBConv block with elastic kernel size and expand ratio (fixed input/output channels).

    Shapes: ``[B, in_channels, H, W]`` → ``[B, out_channels, H / stride, W / stride]``.
    Reference: Once-for-All, arXiv 1908.09791, Sec. 3.2; MobileNetV3 blocks (arXiv 1905.02244).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_sizes: tuple[int, ...],
        expand_ratios: tuple[int, ...],
        stride: int,
        act: str,
        use_se: bool,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.kernel_sizes, self.expand_ratios = tuple(kernel_sizes), tuple(expand_ratios)
        self.act_name = act
        max_mid = self.mid_channels(max(expand_ratios))
        self.expand_conv = ElasticPointwiseConv2d(in_channels, max_mid)
        self.expand_bn = ElasticBatchNorm2d(max_mid)
        self.depthwise_conv = ElasticDepthwiseConv2d(max_mid, kernel_sizes, stride=stride)
        self.depthwise_bn = ElasticBatchNorm2d(max_mid)
        self.se = ElasticSqueezeExcite(max_mid) if use_se else None
        self.project_conv = ElasticPointwiseConv2d(max_mid, out_channels)
        self.project_bn = ElasticBatchNorm2d(out_channels)
        self.act = make_activation(act)
        self.use_residual = stride == 1 and in_channels == out_channels
        self.active_kernel_size = max(kernel_sizes)
        self.active_expand_ratio = max(expand_ratios)

    def mid_channels(self, expand_ratio: float) -> int:
        """Hidden width for an expand ratio (see :func:`mbconv_mid_channels`)."""
        return mbconv_mid_channels(self.in_channels, expand_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = self.mid_channels(self.active_expand_ratio)
        out = self.act(self.expand_bn(self.expand_conv(x, mid)))
        out = self.act(self.depthwise_bn(self.depthwise_conv(out, self.active_kernel_size)))
        if self.se is not None:
            out = self.se(out)
        out = self.project_bn(self.project_conv(out, self.out_channels))
        return x + out if self.use_residual else out

    @torch.no_grad()
    def to_static(self, kernel_size: int, expand_ratio: int) -> MBConv:
        """A plain :class:`MBConv` holding copies of the active weights and BN statistics."""
        mid = self.mid_channels(expand_ratio)
        se_mid = ElasticSqueezeExcite.mid_channels(mid) if self.se is not None else None
        block = MBConv(
            self.in_channels,
            self.out_channels,
            kernel_size=kernel_size,
            stride=self.stride,
            mid_channels=mid,
            act=self.act_name,
            se_mid_channels=se_mid,
        )
        assert isinstance(block.expand, ConvBNAct)
        _copy_conv(block.expand[0], self.expand_conv.sliced(self.in_channels, mid))
        _copy_bn(block.expand[1], self.expand_bn, mid)
        block.depthwise[0].weight.copy_(self.depthwise_conv.kernel(kernel_size)[:mid])
        _copy_bn(block.depthwise[1], self.depthwise_bn, mid)
        if self.se is not None:
            assert isinstance(block.se, SqueezeExcite) and se_mid is not None
            _copy_conv(block.se.reduce, self.se.reduce.sliced(mid, se_mid))
            _copy_conv(block.se.expand, self.se.expand.sliced(se_mid, mid))
        _copy_conv(block.project[0], self.project_conv.sliced(mid, self.out_channels))
        _copy_bn(block.project[1], self.project_bn, self.out_channels)
        return block.to(self.project_conv.weight.device)


def _copy_conv(conv: nn.Conv2d, sliced: tuple[torch.Tensor, torch.Tensor | None]) -> None:
    weight, bias = sliced
    conv.weight.copy_(weight)
    if bias is not None:
        assert conv.bias is not None
        conv.bias.copy_(bias)


def _copy_bn(bn: nn.BatchNorm2d, src: nn.BatchNorm2d, channels: int) -> None:
    bn.weight.copy_(src.weight[:channels])
    bn.bias.copy_(src.bias[:channels])
    bn.running_mean.copy_(src.running_mean[:channels])
    bn.running_var.copy_(src.running_var[:channels])
    bn.num_batches_tracked.copy_(src.num_batches_tracked)
    bn.eps, bn.momentum = src.eps, src.momentum


def clone_static(module: nn.Module) -> nn.Module:
    """A deep copy of a static (non-elastic) module, used for the fixed layers of a subnet."""
    return copy.deepcopy(module)
