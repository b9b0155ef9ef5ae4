"""Deep Compression of a subnet: iterative magnitude pruning with retraining, k-means weight
sharing per layer with centroid fine-tuning, then Huffman coding into a ``subnet.dc`` file.

Stages (Han, Mao, Dally, "Deep Compression", ICLR'16, arXiv 1510.00149):

1. **Pruning** (Sec. 2; Han et al., NeurIPS'15, arXiv 1506.02626, Sec. 3): every conv and linear
   weight with ``|w| < q * std(layer)`` is masked (``torch.nn.utils.prune``), ``q`` growing over
   ``prune_rounds`` rounds, each followed by retraining; depthwise layers, small and sensitive,
   use ``q * DEPTHWISE_QUALITY``.
2. **Weight sharing** (Sec. 3): per layer, the surviving weights are clustered into ``k =
   2**bits`` values by k-means (scikit-learn) with *linear* initialization over [min, max]
   (Sec. 3.2, Fig. 4); each weight becomes an index into the layer's codebook. The codebooks are
   then fine-tuned: the weight is a parametrization ``codebook[index]``, so autograd sums the
   gradients of all weights of a cluster into its centroid (Sec. 3.3, Fig. 3); pruned weights
   point at a fixed zero.
3. **Huffman coding** (Sec. 4) of the cluster indices and of the relative sparse index
   (:mod:`supernet.compress.coding`), written by :func:`supernet.compress.dcfile.save_dc`.

The compression ratio of each stage is against the fp32 ``state_dict`` file (``torch.save``), as
in the paper's Table 1 and Fig. 1: pruned = nonzero weights in fp32 + ``index_bits`` per relative
index; quantized = ``bits`` per nonzero + index + fp32 codebooks; Huffman = the real file. The
tensors that are not conv/linear weights (BatchNorm, biases) stay fp32 in every stage.
"""

from __future__ import annotations

import copy
import io
import logging
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize, prune

from supernet.errors import ConfigError

if TYPE_CHECKING:
    from supernet.compress.context import CompressContext

__all__ = [
    "CODED_MARGIN",
    "DEPTHWISE_QUALITY",
    "STAGES",
    "SUPPORTED_LAYERS",
    "SharedWeight",
    "compressible_layers",
    "magnitude_prune",
    "parse_ratio",
    "run_deep_compression",
    "share_weights",
    "stage_sizes",
]

logger = logging.getLogger(__name__)

DEPTHWISE_QUALITY = 0.5
"""Depthwise layers prune at this fraction of the quality parameter (they hold few weights and
every one filters a whole channel)."""

SUPPORTED_LAYERS = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.GroupNorm)
"""Module types whose parameters Deep Compression knows (conv/linear weights are compressed,
the rest kept in fp32); parameter-free modules (activations, pooling, dropout) are fine too."""


@dataclass(frozen=True)
class Layer:
    """One compressed weight: qualified module name, module, kind and relative-index bits."""

    name: str
    module: nn.Module
    kind: str  # "conv", "depthwise" or "linear"
    index_bits: int


def compressible_layers(model: nn.Module) -> list[Layer]:
    """The conv and linear layers whose weights Deep Compression prunes and shares.

    Relative-index bits as in the paper (Sec. 2): 8 for conv layers, 5 for linear ones.

    Raises:
        ConfigError: a module with its own parameters is of a type not in
            :data:`SUPPORTED_LAYERS`; the message names it and the supported types.
    """
    layers = []
    for name, module in model.named_modules():
        own = [n for n, _ in module.named_parameters(recurse=False)]
        own = [n for n in own if not n.startswith("parametrizations")]
        if isinstance(module, nn.Conv2d):
            dw = module.groups > 1 and module.groups == module.in_channels
            layers.append(Layer(name, module, "depthwise" if dw else "conv", 8))
        elif isinstance(module, nn.Linear):
            layers.append(Layer(name, module, "linear", 5))
        elif own and not isinstance(module, SUPPORTED_LAYERS) and "parametrizations" not in name:
            supported = ", ".join(t.__name__ for t in SUPPORTED_LAYERS)
            raise ConfigError(
                f"layer {name!r} of type {type(module).__name__} holds parameters Deep "
                f"Compression does not know; supported layer types: {supported}"
            )
    return layers


def parse_ratio(budget: str | None) -> float | None:
    """``"10x"`` → 10.0 (a compression ratio against the fp32 ``state_dict`` file); ``None``/``""``
    → ``None``.

    Raises:
        ConfigError: not of the form ``NUMBERx`` with NUMBER > 1.
    """
    if not budget:
        return None
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*[xX×]\s*", budget)
    if not m or float(m.group(1)) <= 1:
        raise ConfigError(
            f"budget = {budget!r} is not allowed for deep-compression; give a compression ratio "
            "against the fp32 state_dict file, e.g. '10x' (> 1)"
        )
    return float(m.group(1))


def fp32_state_dict_bytes(model: nn.Module) -> int:
    """Size in bytes of ``torch.save(model.state_dict())`` (the paper's uncompressed baseline)."""
    buf = io.BytesIO()
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, buf)
    return len(buf.getvalue())


def _stds(layers: list[Layer]) -> list[float]:
    return [float(layer.module.weight.detach().std()) if layer.module.weight.numel() > 1 else 0.0
            for layer in layers]  # fmt: skip


def _masks(layers: list[Layer], stds: list[float], quality: float) -> list[torch.Tensor]:
    """Keep-masks ``|w| >= q * std`` (at least one weight kept per layer)."""
    masks = []
    for layer, std in zip(layers, stds, strict=True):
        w = layer.module.weight.detach().abs()
        q = quality * (DEPTHWISE_QUALITY if layer.kind == "depthwise" else 1.0)
        keep = w >= q * std
        if not keep.any():
            keep.view(-1)[int(w.argmax())] = True
        masks.append(keep)
    return masks


def stage_sizes(
    layers: list[Layer],
    masks: list[torch.Tensor],
    bits: int,
    fp32_bytes: int,
    other_bytes: int,
    *,
    index_scale: float = 1.0,
    kmeans_seed: int | None = None,
    header_bytes: int = 0,
) -> dict[str, int]:
    """Estimated bytes after pruning, after weight sharing and after Huffman coding (paper Fig. 1).

    ``"coded"`` estimates the ``subnet.dc`` body: codebooks, the Huffman-coded cluster indices and
    relative index (:func:`~supernet.compress.coding.huffman_coded_bytes`) and ``other_bytes``.
    The relative index is exact for these masks; the cluster indices are those of k-means's
    linear initialization (the kept weights binned evenly over [min, max], Sec. 3.2), which the
    Lloyd iterations make more even (so the coded indices come out ~10% larger), or with
    ``kmeans_seed`` those of the k-means itself (slow: seconds per call); ``index_scale``
    multiplies the coded indices' bytes; ``header_bytes`` is added for the file's JSON header.

    Args:
        layers, masks: the compressed layers and their keep-masks (same shapes as the weights).
        bits: cluster-index bits per kept weight.
        fp32_bytes: the fp32 ``state_dict`` file size (unused; kept for the caller's table).
        other_bytes: bytes of the tensors kept in fp32 (BatchNorm, biases).
    """
    from supernet.compress.coding import huffman_coded_bytes, relative_index

    pruned_bits = quant_bits = codebook_bits = 0
    index_counts: Counter[int] = Counter()
    gap_counts: Counter[int] = Counter()
    for layer, mask in zip(layers, masks, strict=True):
        flat = mask.reshape(-1)
        pos = flat.nonzero().squeeze(1).numpy()
        gaps, filler = relative_index(pos, layer.index_bits)
        entries = len(gaps)
        k = min(1 << bits, max(1, len(pos)))
        pruned_bits += entries * (32 + layer.index_bits)
        quant_bits += entries * (bits + layer.index_bits) + 32 * k
        codebook_bits += 32 * k
        kept = layer.module.weight.detach().reshape(-1)[flat].double().numpy()
        span = max(float(kept.max() - kept.min()), 1e-30)
        if kmeans_seed is None:
            labels = np.clip(np.rint((kept - kept.min()) / span * (k - 1)), 0, k - 1)
        else:
            labels = _kmeans_1d(kept, min(k, len(np.unique(kept))), kmeans_seed)[1]
        labels = labels.astype(np.int64)
        index_counts.update(dict(enumerate(np.bincount(labels, minlength=k).tolist())))
        index_counts[k] += int(filler.sum())
        values, counts = np.unique(gaps, return_counts=True)
        gap_counts.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
    index_bytes = round(index_scale * huffman_coded_bytes(index_counts))
    coded = codebook_bits // 8 + index_bytes + huffman_coded_bytes(gap_counts) + other_bytes
    coded += header_bytes
    return {"pruned": pruned_bits // 8 + other_bytes, "quantized": quant_bits // 8 + other_bytes,
            "coded": coded, "coded_index": index_bytes}  # fmt: skip


def _other_bytes(model: nn.Module, layers: list[Layer]) -> int:
    weights = {f"{layer.name}.weight" if layer.name else "weight" for layer in layers}
    return sum(v.numel() * v.element_size() for k, v in model.state_dict().items()
               if k not in weights)  # fmt: skip


HEADER_BYTES_PER_TENSOR = 8
"""Allowance for ``subnet.dc``'s zlib-compressed JSON header, per ``state_dict`` tensor (measured
2.6-2.8 KB for the 435 tensors of the largest ``mbv3-tiny`` subnet)."""

CODED_MARGIN = 0.01
"""A ``"coded"`` budget is aimed 1% below the limit: fine-tuning moves the centroids and the
cluster sizes after the size is estimated (a 10x run on the largest ``mbv3-tiny`` subnet aimed
exactly at it ended 217 bytes, 0.04%, over)."""

STAGES = ("coded", "quantized")
"""What a Deep Compression budget is checked on when the pruning quality is chosen: the
Huffman-coded file (estimated, the default) or the size after weight sharing, before Huffman."""


def choose_quality(
    model: nn.Module,
    ratio: float,
    bits: int,
    fp32_bytes: int,
    q_max: float = 4.0,
    *,
    stage: str = "coded",
    seed: int = 0,
) -> tuple[float, dict[str, int]]:
    """The smallest quality parameter ``q`` whose estimated size at ``stage`` (see
    :func:`stage_sizes`; ``"coded"``: after Huffman coding, ``"quantized"``: after weight sharing,
    before Huffman) is ``fp32_bytes / ratio`` or less (``"coded"``: :data:`CODED_MARGIN` less);
    bisection on ``q``.

    Counting Huffman's gain prunes fewer weights for the same budget: the paper's ratios are
    those of the coded file (arXiv 1510.00149, Table 1). For ``"coded"`` the bisection runs
    twice: with the cheap estimate of the cluster indices, then with it rescaled by the k-means
    labels' real coded size at the first answer (one k-means pass, ``seed``).

    Raises:
        ConfigError: ``stage`` not in :data:`STAGES`, or even ``q = q_max`` (almost every weight
            pruned) does not reach ``ratio``; the message gives the smallest size and ratio
            reached.
    """
    if stage not in STAGES:
        raise ConfigError(f"stage = {stage!r} is not allowed; choose from {STAGES}")
    layers = compressible_layers(model)
    stds, other = _stds(layers), _other_bytes(model, layers)
    target = fp32_bytes / ratio * (1.0 - CODED_MARGIN if stage == "coded" else 1.0)
    header = HEADER_BYTES_PER_TENSOR * len(model.state_dict())

    def size(q: float, scale: float = 1.0) -> dict[str, int]:
        masks = _masks(layers, stds, q)
        return stage_sizes(
            layers, masks, bits, fp32_bytes, other, index_scale=scale, header_bytes=header
        )

    def bisect(scale: float) -> float:
        lo, hi = 0.0, q_max
        for _ in range(20):
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if size(mid, scale)[stage] <= target else (mid, hi)
        return hi

    best = size(q_max)
    if best[stage] > target:
        when = "after Huffman coding (estimated)" if stage == "coded" else "before Huffman coding"
        raise ConfigError(
            f"budget {ratio:g}x is below what deep-compression reaches with {bits}-bit weights: "
            f"the smallest reached is {best[stage]:,} bytes "
            f"({fp32_bytes / best[stage]:.1f}x of the fp32 {fp32_bytes:,} bytes) {when}; "
            f"{other:,} bytes are BatchNorm/bias tensors kept in fp32"
        )
    scale = 1.0
    q = bisect(scale)
    if stage == "coded":
        masks = _masks(layers, stds, q)
        exact = stage_sizes(layers, masks, bits, fp32_bytes, other, kmeans_seed=seed)
        scale = exact["coded_index"] / max(size(q)["coded_index"], 1)
        q = bisect(scale)
    return q, size(q, scale)


def magnitude_prune(model: nn.Module, quality: float, stds: list[float] | None = None) -> None:
    """Mask every conv/linear weight with ``|w| < q * std`` (``torch.nn.utils.prune``, masks
    combine with earlier ones). ``stds``: per-layer standard deviations (default: current).

    Reference: arXiv 1506.02626, Sec. 3 (threshold = quality parameter x layer std).
    """
    layers = compressible_layers(model)
    stds = _stds(layers) if stds is None else stds
    for layer, keep in zip(layers, _masks(layers, stds, quality), strict=True):
        prune.custom_from_mask(layer.module, "weight", keep)


class SharedWeight(nn.Module):
    """Parametrization ``weight = [codebook, 0][index]``: weight sharing with trainable centroids.

    The gradient of the codebook is the sum of the gradients of the weights in each cluster
    (the backward of the gather), as in arXiv 1510.00149, Sec. 3.3, Fig. 3. Index ``k`` (one past
    the codebook) is a pruned weight and stays zero.

    Shapes: ``codebook`` ``[k]``, ``index`` int64 of the weight's shape.
    """

    def __init__(self, codebook: torch.Tensor, index: torch.Tensor) -> None:
        super().__init__()
        self.codebook = nn.Parameter(codebook.clone())
        self.register_buffer("index", index.clone())
        self.register_buffer("zero", torch.zeros(1, dtype=codebook.dtype))

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.codebook, self.zero])[self.index]


def _kmeans_1d(values: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means on scalars with linear initialization over [min, max] (arXiv 1510.00149, Sec. 3.2,
    Fig. 4); scikit-learn's Lloyd iterations. Returns (centroids [k], labels [n])."""
    from sklearn.cluster import KMeans

    init = np.linspace(values.min(), values.max(), k).reshape(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "fewer distinct points than clusters" is handled below
        km = KMeans(n_clusters=k, init=init, n_init=1, random_state=seed).fit(values.reshape(-1, 1))
    return km.cluster_centers_.reshape(-1).astype(np.float32), km.labels_


def share_weights(model: nn.Module, bits: int, seed: int = 0) -> None:
    """Replace each conv/linear weight by a :class:`SharedWeight` parametrization in place.

    Pruning masks are made permanent first (``prune.remove``); the kept weights of each layer are
    clustered into ``min(2**bits, distinct values)`` centroids.

    Raises:
        ConfigError: ``bits`` outside 1 ... 8.
    """
    if not 1 <= bits <= 8:
        raise ConfigError(f"bits = {bits} must be in 1 ... 8")
    for layer in compressible_layers(model):
        module = layer.module
        if prune.is_pruned(module) and hasattr(module, "weight_mask"):
            keep = module.weight_mask.bool().clone()
            prune.remove(module, "weight")
        else:
            keep = torch.ones_like(module.weight, dtype=torch.bool)
        w = module.weight.detach()
        kept = w[keep].numpy().astype(np.float64)
        k = min(1 << bits, len(np.unique(kept)))
        centroids, labels = _kmeans_1d(kept, k, seed)
        index = torch.full(w.shape, k, dtype=torch.int64)
        index[keep] = torch.from_numpy(labels.astype(np.int64))
        module.weight.requires_grad_(False)
        parametrize.register_parametrization(
            module, "weight", SharedWeight(torch.from_numpy(centroids), index), unsafe=True
        )


def run_deep_compression(
    ctx: CompressContext,
    *,
    budget: str | None = "10x",
    finetune_steps: int = 300,
    bits: int = 5,
    prune_rounds: int = 3,
    budget_stage: str = "coded",
) -> dict[str, Any]:
    """Prune, share and Huffman-code ``ctx.model``; write ``subnet.dc`` into ``ctx.out_dir``.

    ``finetune_steps`` are split evenly over the ``prune_rounds`` retraining rounds and the
    centroid fine-tuning. The pruning quality is the smallest that meets ``budget`` at
    ``budget_stage`` (``"coded"``: the Huffman-coded file, estimated before pruning;
    ``"quantized"``: after weight sharing; see :func:`choose_quality`); the untouched subnet and
    each stage are scored on the test set. Fine-tuning moves the weights, so the real file can
    miss an estimated budget by a little: ``stages["estimated_coded_bytes"]`` sits beside the real
    ``file_bytes``.

    Returns:
        ``{"rows": [...], "artifacts": [subnet.dc], "plots": [], "stages": {...}}``: one table row
        per stage (method, MACs of the dense subnet, size in bytes, ratio, nonzero weights,
        test top-1 in %).

    Raises:
        ConfigError: bad ``budget``/``bits``/``prune_rounds``/``finetune_steps``/
            ``budget_stage``, a budget below what the method reaches, or an unsupported layer
            type.

    Reference: arXiv 1510.00149, Sec. 2-4, Table 1, Fig. 1.
    """
    from supernet.compress.dcfile import DC_FILE, save_dc

    ratio = parse_ratio(budget) or 10.0
    if prune_rounds < 1 or finetune_steps < 0:
        raise ConfigError(
            f"prune_rounds = {prune_rounds} must be >= 1, finetune_steps = {finetune_steps} >= 0"
        )
    model = copy.deepcopy(ctx.model).eval()
    fp32 = fp32_state_dict_bytes(model)
    quality, est = choose_quality(model, ratio, bits, fp32, stage=budget_stage, seed=ctx.seed)
    layers = compressible_layers(model)
    total_weights = sum(layer.module.weight.numel() for layer in layers)
    steps = finetune_steps // (prune_rounds + 1)
    rows = [_row("fp32 subnet", fp32, fp32, total_weights, ctx.test(model))]
    stds = _stds(layers)
    for r in range(1, prune_rounds + 1):
        magnitude_prune(model, quality * r / prune_rounds, stds)
        ctx.finetune(model, steps)
    nonzero = sum(int(layer.module.weight_mask.sum()) for layer in layers)
    rows.append(_row("pruned", est["pruned"], fp32, nonzero, ctx.test(model)))
    share_weights(model, bits, ctx.seed)
    ctx.finetune(model, finetune_steps - prune_rounds * steps)
    quantized_acc = ctx.test(model)
    rows.append(
        _row(f"+ {bits}-bit weight sharing", est["quantized"], fp32, nonzero, quantized_acc)
    )
    path = ctx.out_dir / DC_FILE
    info = save_dc(path, model, arch=ctx.arch, rebuild=ctx.rebuild)
    rows.append(_row("+ Huffman (subnet.dc)", info["file_bytes"], fp32, nonzero, quantized_acc))
    logger.info("deep compression: q = %.3f, %s", quality, info)
    return {
        "rows": rows,
        "artifacts": [path],
        "plots": [],
        "stages": {
            "quality": quality,
            "bits": bits,
            "fp32_bytes": fp32,
            "budget_stage": budget_stage,
            "estimated_coded_bytes": est["coded"],
            **info,
        },
        "model": model,
    }


def _row(stage: str, size: int, fp32: int, nonzero: int, acc: float) -> dict[str, Any]:
    return {"method": "deep-compression", "stage": stage, "size_bytes": int(size),
            "ratio": round(fp32 / size, 2), "nonzero_weights": nonzero,
            "test_top1": round(acc, 2)}  # fmt: skip
