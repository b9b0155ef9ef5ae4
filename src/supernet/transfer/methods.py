"""Transfer methods: which parameters of a pretrained subnet train on the target dataset.

Paper names and trainable sets (TinyTL, Cai, Gan, Zhu, Han; NeurIPS'20; arXiv 2007.11622):

============  ===============================================================  ===============
method        trains                                                           paper
============  ===============================================================  ===============
full          every parameter                                                  Sec. 4, "FT-Full"
last          the new classifier only                                          "FT-Last"
norm+last     γ and β of every norm + classifier                               "FT-Norm+Last"
bias+last     every bias (norm β, SE conv biases) + classifier                 "TinyTL-B", 3.1
tinytl-l      lite residual modules + classifier                               "TinyTL-L", 3.2
tinytl-l+b    lite residual + every bias + classifier, except each lite        "TinyTL-L+B"
              residual's final-norm β (redundant with the main branch's bias)
============  ===============================================================  ===============

Every method gets a fresh classifier for the target's classes behind dropout 0.2; batch norms run
with frozen running statistics (:mod:`supernet.transfer.frozen_bn`), group norms are unaffected.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from supernet.errors import ConfigError
from supernet.nn.blocks import MobileNetV3, plain_depthwise_convs
from supernet.transfer.efficient import make_memory_efficient
from supernet.transfer.frozen_bn import freeze_batch_norm
from supernet.transfer.lite_residual import LiteResidual, LiteResidualConfig, insert_lite_residuals
from supernet.transfer.quantize import MAX_CENTROIDS, quantize_frozen_weights

__all__ = [
    "METHODS",
    "build_transfer_model",
    "check_method",
    "set_trainable",
    "trainable_parameter_names",
]

METHODS = ("full", "last", "norm+last", "bias+last", "tinytl-l", "tinytl-l+b")
"""Transfer methods by paper name (TinyTL, arXiv 2007.11622, Sec. 3-4)."""

LITE_RESIDUAL_METHODS = ("tinytl-l", "tinytl-l+b")
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)


def check_method(method: str) -> str:
    """Return ``method`` if it is one of :data:`METHODS`.

    Raises:
        ConfigError: naming ``method`` and the known methods.
    """
    if method not in METHODS:
        raise ConfigError(f"method = {method!r} is not known; choose from {METHODS}")
    return method


def set_trainable(model: MobileNetV3, method: str) -> MobileNetV3:
    """Set ``requires_grad`` of every parameter of ``model`` for ``method`` (table above), in
    place; the classifier is ``model.classifier``. Returns ``model``.

    Raises:
        ConfigError: unknown ``method``.
    """
    check_method(method)
    classifier = {id(p) for p in model.classifier.parameters()}
    branches = [m for m in model.modules() if isinstance(m, LiteResidual)]
    lite = {id(p) for m in branches for p in m.parameters()}
    lite_final_bias = {id(m.final_norm.bias) for m in branches}
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            is_bias = name == "bias"
            train = {
                "full": True,
                "last": False,
                "norm+last": isinstance(module, _NORMS),
                "bias+last": is_bias,
                "tinytl-l": id(p) in lite,
                "tinytl-l+b": (id(p) in lite or is_bias) and id(p) not in lite_final_bias,
            }[method]
            p.requires_grad_(train or id(p) in classifier)
    return model


def trainable_parameter_names(model: nn.Module) -> list[str]:
    """Names (``named_parameters`` order) of the parameters of ``model`` that require grad."""
    return [name for name, p in model.named_parameters() if p.requires_grad]


def _check_positive_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} = {value!r} must be an int >= {minimum}")


def build_transfer_model(
    subnet: MobileNetV3,
    num_classes: int,
    method: str,
    *,
    resolution: int,
    input_channels: int | None = None,
    dropout: float = 0.2,
    efficient: bool = True,
    quantize_frozen: bool = False,
    num_centroids: int = MAX_CENTROIDS,
    lite_residual: LiteResidualConfig | None = None,
    lite_residual_everywhere: bool = False,
    generator: torch.Generator | None = None,
) -> MobileNetV3:
    """A copy of ``subnet`` set up for transfer learning with ``method``; ``subnet`` is not changed.

    Steps: deep copy (fast-path depthwise convs turned back into standard ones); new
    ``nn.Linear(features, num_classes)`` (weights N(0, 0.01), bias 0) behind
    ``Dropout(dropout)``; lite residual modules for ``tinytl-l*``; batch norms with frozen
    statistics; ``requires_grad`` per method; with ``quantize_frozen``, every frozen conv/linear
    weight k-means coded at 8 bits; with ``efficient``, the memory-efficient autograd modules.
    The model is returned in train mode (dropout on; BN statistics stay frozen).

    Shapes: ``[B, input_channels, resolution, resolution]`` → logits ``[B, num_classes]``.

    Args:
        subnet: a static subnet (``OFAMobileNetV3.get_subnet``, or built from static blocks).
        num_classes: classes of the target dataset (≥ 2).
        method: one of :data:`METHODS`.
        resolution: input width in pixels (picks the lite residual kernels).
        input_channels: channels of the target images; checked against the subnet's stem.
        lite_residual: hyperparameters of the lite residual branch (default
            :class:`LiteResidualConfig()`: TinyTL's).
        lite_residual_everywhere: insert the lite residual modules for every method, as the
            TinyTL reference does (its ``full``, ``last``, ``norm+last`` and ``bias+last``
            networks carry them, trained or frozen by the method's rule: all of them for
            ``full``, their norms for ``norm+last``, their biases for ``bias+last``, none for
            ``last``), so every method's memory is of the same network. Default ``False``: only
            ``tinytl-l`` and ``tinytl-l+b`` get them (each baseline is the plain subnet).
        generator: RNG for the new classifier and lite residual weights.

    Raises:
        ConfigError: unknown ``method`` (the known ones are listed); ``num_classes < 2``;
            ``resolution < 1``; ``input_channels`` differs from the subnet's; ``dropout`` not in
            [0, 1); bad ``lite_residual`` or ``num_centroids``.

    Reference: TinyTL, arXiv 2007.11622, Sec. 3 (methods) and Sec. 4.1 (dropout 0.2 classifier).
    """
    check_method(method)
    _check_positive_int("num_classes", num_classes, 2)
    _check_positive_int("resolution", resolution, 1)
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout = {dropout} must be in [0, 1)")
    lr_config = (lite_residual or LiteResidualConfig()).validate()
    if quantize_frozen and not 1 <= num_centroids <= MAX_CENTROIDS:
        raise ConfigError(f"num_centroids = {num_centroids} must be in [1, {MAX_CENTROIDS}]")
    stem_conv = next(m for m in subnet.stem.modules() if isinstance(m, nn.Conv2d))
    if input_channels is not None and input_channels != stem_conv.in_channels:
        raise ConfigError(
            f"input channels = {input_channels} do not match the subnet, which takes "
            f"{stem_conv.in_channels}-channel images"
        )
    # TinyTL's efficient modules and memory model are built on the standard conv layers' graphs
    model = plain_depthwise_convs(copy.deepcopy(subnet))
    weight = model.classifier.weight
    classifier = nn.Linear(weight.shape[1], num_classes)  # initialised on the CPU (generator)
    with torch.no_grad():
        nn.init.normal_(classifier.weight, 0.0, 0.01, generator=generator)
        nn.init.zeros_(classifier.bias)
    model.classifier = classifier.to(weight.device, weight.dtype)
    model.dropout = nn.Dropout(dropout)
    if method in LITE_RESIDUAL_METHODS or lite_residual_everywhere:
        insert_lite_residuals(model, resolution=resolution, config=lr_config, generator=generator)
    freeze_batch_norm(model)
    set_trainable(model, method)
    if quantize_frozen:
        quantize_frozen_weights(model, num_centroids)
    if efficient:
        make_memory_efficient(model)
    return model.train()
