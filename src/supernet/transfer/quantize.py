"""Frozen weights at 8 bits: per-layer k-means weight sharing with 256 centroids.

A frozen conv or linear layer keeps a uint8 index per weight and a 256-entry float32 codebook
(both buffers), so it really holds 1 byte per weight (+ 1 KiB). Its forward decodes
``codebook[indices]``, and backward decodes again for the input gradient instead of keeping the
decoded weight (see :mod:`supernet.transfer.functions`). TinyTL counts frozen weights at 8 bits
(arXiv 2007.11622, Sec. 4.1, "memory footprint").

Reference: Deep Compression (Han, Mao, Dally; ICLR'16; arXiv 1510.00149), Sec. 3: weight sharing
by k-means per layer (3.1), centroids initialised linearly between the layer's min and max
weight (3.2). The centroids are not fine-tuned afterwards (3.3): the layers stay frozen.

The k-means here is Lloyd's algorithm written for one dimension: on the sorted weights every
cluster is a contiguous run, so an iteration is k binary searches and prefix-sum differences
(O(k log n)) instead of scikit-learn's n × k distances. It runs until no assignment changes, like
``sklearn.cluster.KMeans(init=linear, n_init=1, tol=0)``, which it matches (a test checks);
scikit-learn's default tolerance stops earlier (6 iterations, 1.2 s on a 196k-weight layer on this
machine). An empty cluster keeps its centroid.
"""

from __future__ import annotations

import torch
from torch import nn

from supernet.errors import ConfigError
from supernet.nn.blocks import WSConv2d, standardize_weight
from supernet.transfer.functions import frozen_conv2d, frozen_linear

__all__ = [
    "QuantizedConv2d",
    "QuantizedLinear",
    "kmeans_1d",
    "quantization_errors",
    "quantize_frozen_weights",
]

MAX_CENTROIDS = 256  # uint8 indices


def kmeans_1d(
    values: torch.Tensor, num_centroids: int = MAX_CENTROIDS, *, max_iter: int = 300
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster ``values`` into at most ``num_centroids`` shared values (Lloyd, linear init).

    A layer with at most ``num_centroids`` distinct values is coded exactly (its distinct values
    are the codebook). Computed in float64.

    Shapes: ``values [...]`` → ``codebook [k]`` (sorted, float64, k ≤ num_centroids) and
    ``indices [...]`` (int64 into the codebook, same shape as ``values``).

    Raises:
        ConfigError: ``num_centroids`` is not in [1, 256] or ``values`` is empty.

    Reference: Deep Compression, arXiv 1510.00149, Sec. 3.1-3.2.
    """
    if not 1 <= num_centroids <= MAX_CENTROIDS:
        raise ConfigError(f"num_centroids = {num_centroids} must be in [1, {MAX_CENTROIDS}]")
    if values.numel() == 0:
        raise ConfigError("cannot quantize an empty weight")
    flat = values.detach().reshape(-1).to(torch.float64)
    distinct = torch.unique(flat)
    if distinct.numel() <= num_centroids:
        return distinct, torch.searchsorted(distinct, flat).view(values.shape)
    # Lloyd on sorted values: cluster j is the run s[bounds[j]:bounds[j + 1]], so an iteration is
    # k binary searches plus prefix-sum differences instead of n nearest-centroid searches.
    ordered = torch.sort(flat).values
    prefix = torch.cat([flat.new_zeros(1), torch.cumsum(ordered, 0)])
    edge = torch.tensor([0, ordered.numel()], device=flat.device)
    codebook = torch.linspace(float(ordered[0]), float(ordered[-1]), num_centroids,
                              dtype=torch.float64, device=flat.device)  # fmt: skip
    bounds = None
    for _ in range(max_iter):
        # a value on a midpoint goes to the lower centroid, like an argmin over distances
        inner = torch.searchsorted(ordered, (codebook[1:] + codebook[:-1]) / 2, side="right")
        new_bounds = torch.cat([edge[:1], inner, edge[1:]])
        if bounds is not None and torch.equal(new_bounds, bounds):
            break
        bounds = new_bounds
        counts = bounds[1:] - bounds[:-1]
        sums = prefix[bounds[1:]] - prefix[bounds[:-1]]
        codebook = torch.where(counts > 0, sums / counts.clamp_min(1), codebook)
    labels = torch.searchsorted((codebook[1:] + codebook[:-1]) / 2, flat)
    return codebook, labels.view(values.shape)


class _Quantized:
    """Shared part of the 8-bit layers: buffers ``weight_indices`` (uint8, the weight's shape) and
    ``weight_codebook`` (float32 ``[k]``); ``weight`` decodes them (no autograd history)."""

    weight_indices: torch.Tensor
    weight_codebook: torch.Tensor
    max_abs_error: float

    def _encode(self, weight: torch.Tensor, num_centroids: int) -> None:
        codebook, indices = kmeans_1d(weight, num_centroids)
        self.register_buffer("weight_indices", indices.to(torch.uint8))  # type: ignore[attr-defined]
        self.register_buffer("weight_codebook", codebook.to(weight.dtype))  # type: ignore[attr-defined]
        self.max_abs_error = float((self.frozen_weight() - weight).abs().max())

    def frozen_weight(self) -> torch.Tensor:
        """The decoded weight ``codebook[indices]`` (a fresh tensor each call, never saved)."""
        return self.weight_codebook[self.weight_indices.int()]

    @property
    def weight(self) -> torch.Tensor:
        return self.frozen_weight()


def _copy_attributes(target: nn.Module, source: nn.Module, names: tuple[str, ...]) -> None:
    for name in names:
        setattr(target, name, getattr(source, name))


_CONV_ATTRIBUTES = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                    "transposed", "output_padding", "groups", "padding_mode",
                    "_reversed_padding_repeated_twice")  # fmt: skip


class QuantizedConv2d(_Quantized, nn.Conv2d):
    """A frozen ``nn.Conv2d`` whose weight is k-means coded at 8 bits; forward decodes it and saves
    nothing for backward (the input gradient decodes again). The bias, if any, is kept as a
    parameter and may train. A :class:`WSConv2d` is coded after standardization (its weight is
    frozen, so standardizing once is exact): ``weight`` is then the standardized weight.

    Shapes: as ``nn.Conv2d``. Memory: 1 byte per weight + 4 bytes per centroid.
    Reference: Deep Compression, arXiv 1510.00149, Sec. 3.
    """

    def __init__(self, conv: nn.Conv2d, num_centroids: int = MAX_CENTROIDS) -> None:
        nn.Module.__init__(self)  # nn.Conv2d.__init__ would allocate a float weight parameter
        _copy_attributes(self, conv, _CONV_ATTRIBUTES)
        self.bias = conv.bias
        weight = conv.weight.detach()
        self.standardized = isinstance(conv, WSConv2d)
        self._encode(standardize_weight(weight) if self.standardized else weight, num_centroids)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            return self._conv_forward(x, self.frozen_weight(), self.bias)
        return frozen_conv2d(x, self, self.bias)


class QuantizedLinear(_Quantized, nn.Linear):
    """A frozen ``nn.Linear`` with its weight k-means coded at 8 bits (see
    :class:`QuantizedConv2d`).

    Shapes: ``[..., in_features]`` → ``[..., out_features]``.
    Reference: Deep Compression, arXiv 1510.00149, Sec. 3.
    """

    def __init__(self, linear: nn.Linear, num_centroids: int = MAX_CENTROIDS) -> None:
        nn.Module.__init__(self)
        _copy_attributes(self, linear, ("in_features", "out_features"))
        self.bias = linear.bias
        self._encode(linear.weight.detach(), num_centroids)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return frozen_linear(x, self, self.bias)


def quantize_frozen_weights(
    model: nn.Module, num_centroids: int = MAX_CENTROIDS
) -> dict[str, float]:
    """Replace every conv and linear layer of ``model`` whose weight is frozen
    (``requires_grad=False``) by its 8-bit version, in place.

    Returns ``{module name: max |decoded − original| weight error}`` for the replaced layers
    (errors in weight units; a WS conv's against its standardized weight). Parameter names change
    for those layers only: ``weight`` becomes ``weight_indices`` and ``weight_codebook``.

    Raises:
        ConfigError: ``num_centroids`` is not in [1, 256].
    """
    errors: dict[str, float] = {}
    targets = [
        (name, m) for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and not isinstance(m, _Quantized)
        and not m.weight.requires_grad
    ]  # fmt: skip
    for name, module in targets:
        quantized = (QuantizedConv2d if isinstance(module, nn.Conv2d) else QuantizedLinear)(
            module, num_centroids
        )
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, quantized)
        errors[name] = quantized.max_abs_error
    return errors


def quantization_errors(model: nn.Module) -> dict[str, float]:
    """``{module name: max abs weight error}`` of every 8-bit layer of ``model``."""
    return {n: m.max_abs_error for n, m in model.named_modules() if isinstance(m, _Quantized)}
