"""Named search spaces, as data.

- ``ofa-mbv3`` / ``ofa-mbv3-w1.2``: the Once-for-All MobileNetV3 space (Cai et al., ICLR'20,
  arXiv 1908.09791, Sec. 4 "Search space" and the released ``OFAMobileNetV3``): ImageNet input
  3x224, 5 elastic stages of up to 4 MBConv blocks, widths 24-40-80-112-160, strides 2-2-2-1-2,
  SE in stages 2, 4, 5, h-swish from stage 3 on, kernel size {3, 5, 7}, expand ratio {3, 4, 6},
  depth {2, 3, 4}, resolution 128..224 step 4; width multiplier 1.0 or 1.2.
- ``mbv3-tiny``: the same elastic dimensions sized for 1x28x28 images on 2 CPU cores (see
  :data:`MBV3_TINY_NOTES`).
- ``proxyless-tiny``: ``mbv3-tiny``'s layout with the activations of the ProxylessNAS / MobileNetV2
  family that TinyTL adapts (ReLU6 everywhere, no squeeze-and-excitation; ProxylessNAS, Cai et al.,
  ICLR'19, arXiv 1812.00332; TinyTL, arXiv 2007.11622, Sec. 4 uses ProxylessNAS-Mobile and an
  OFA supernet of that family). h-swish and SE keep 32-bit inputs for backward even when every
  weight is frozen, so this space is the one where TinyTL's memory saving shows (see
  :data:`PROXYLESS_TINY_NOTES`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from supernet.errors import ConfigError
from supernet.space.space import SearchSpace, StageSpec, make_divisible

__all__ = ["MBV3_TINY_NOTES", "PROXYLESS_TINY_NOTES", "get_space", "list_spaces", "register_space"]

_OFA_REFERENCE = "Once-for-All, Cai et al., ICLR'20, arXiv 1908.09791, Sec. 4"


def _ofa_mbv3(width_mult: float) -> SearchSpace:
    def w(c: int) -> int:
        return make_divisible(c * width_mult, 8)

    stage_rows = [  # width, stride, act, SE  (OFA MobileNetV3, Sec. 4)
        (24, 2, "relu", False),
        (40, 2, "relu", True),
        (80, 2, "h_swish", False),
        (112, 1, "h_swish", True),
        (160, 2, "h_swish", True),
    ]
    return SearchSpace(
        name="ofa-mbv3" if width_mult == 1.0 else f"ofa-mbv3-w{width_mult:g}",
        input_channels=3,
        num_classes=1000,
        resolutions=tuple(range(128, 225, 4)),
        kernel_sizes=(3, 5, 7),
        expand_ratios=(3, 4, 6),
        depths=(2, 3, 4),
        stages=tuple(StageSpec(w(c), 4, s, a, se) for c, s, a, se in stage_rows),
        stem_width=w(16),
        stem_stride=2,
        first_block_width=w(16),
        final_expand_width=w(960),
        feature_mix_width=w(1280),
        width_mult=width_mult,
        reference=_OFA_REFERENCE,
    )


MBV3_TINY_NOTES = """\
mbv3-tiny: Once-for-All's elastic dimensions on a MobileNetV3 sized for 1x28x28 inputs.
  input 1 x {20, 24, 28, 32}^2 (elastic resolution around Fashion-MNIST's native 28)
  stem 3x3 conv stride 2 -> 16 ch (h-swish); fixed MBConv e1 k3 -> 16 ch (relu)
  stage  width  max depth  stride  act      SE
    1     16       4         2     relu     no
    2     24       4         1     relu     yes
    3     32       4         2     h_swish  no
    4     48       4         1     h_swish  yes
    5     64       4         1     h_swish  yes
  1x1 conv -> 384 (h-swish), global pool, 1x1 conv -> 512 (h-swish), dropout, linear
  kernel size {3, 5, 7}, expand ratio {3, 4, 6}, depth {2, 3, 4}
  feature maps at resolution 28: 14 (stem, first block) -> 7 (stages 1-2) -> 4 (stages 3-5)
  (strides chosen for speed: depthwise backward dominates a CPU training step)
  size(): ((9^2 + 9^3 + 9^4) ** 5) * 4 resolutions = 8.8e19 subnets
"""


def _mbv3_tiny() -> SearchSpace:
    return SearchSpace(
        name="mbv3-tiny",
        input_channels=1,
        num_classes=10,
        resolutions=(20, 24, 28, 32),
        kernel_sizes=(3, 5, 7),
        expand_ratios=(3, 4, 6),
        depths=(2, 3, 4),
        stages=(
            StageSpec(16, 4, 2, "relu", False),
            StageSpec(24, 4, 1, "relu", True),
            StageSpec(32, 4, 2, "h_swish", False),
            StageSpec(48, 4, 1, "h_swish", True),
            StageSpec(64, 4, 1, "h_swish", True),
        ),
        stem_width=16,
        stem_stride=2,
        first_block_width=16,
        final_expand_width=384,
        feature_mix_width=512,
        reference=_OFA_REFERENCE + " (dimensions); widths sized for 28x28 on CPU",
    )


PROXYLESS_TINY_NOTES = """\
proxyless-tiny: mbv3-tiny's widths, strides and elastic dimensions with ReLU6 and no SE.
  input 1 x {20, 24, 28, 32}^2; stem 3x3 stride 2 -> 16 ch (ReLU6); MBConv e1 k3 -> 16 ch (relu)
  stages 16-24-32-48-64, strides 2-1-2-1-1, max depth 4, ReLU6, no squeeze-and-excitation
  1x1 conv -> 384 (ReLU6), global pool, 1x1 conv -> 512 (ReLU6), dropout, linear
  kernel size {3, 5, 7}, expand ratio {3, 4, 6}, depth {2, 3, 4}; size() as mbv3-tiny
  Why: TinyTL's backbone family (ReLU6, no SE): with frozen weights a ReLU6 keeps 1 bit per
  element for backward, an h-swish or SE product keeps 32 bits.
"""


def _proxyless_tiny() -> SearchSpace:
    base = _mbv3_tiny()
    return replace(
        base,
        name="proxyless-tiny",
        stages=tuple(replace(s, act="relu6", use_se=False) for s in base.stages),
        head_act="relu6",
        reference="ProxylessNAS, arXiv 1812.00332 (ReLU6, no SE), as backbone in TinyTL, arXiv "
        "2007.11622, Sec. 4; elastic dimensions of " + _OFA_REFERENCE,
    )


_REGISTRY: dict[str, Callable[[], SearchSpace]] = {
    "ofa-mbv3": lambda: _ofa_mbv3(1.0),
    "ofa-mbv3-w1.2": lambda: _ofa_mbv3(1.2),
    "mbv3-tiny": _mbv3_tiny,
    "proxyless-tiny": _proxyless_tiny,
}


def register_space(name: str, factory: Callable[[], SearchSpace]) -> None:
    """Add a named space; ``factory()`` must return a :class:`SearchSpace` called ``name``.

    Raises:
        ConfigError: when the name is already taken.
    """
    if name in _REGISTRY:
        raise ConfigError(f"space {name!r} is already registered")
    _REGISTRY[name] = factory


def list_spaces() -> list[str]:
    """Names of all registered spaces."""
    return sorted(_REGISTRY)


def get_space(name: str, *, num_classes: int | None = None) -> SearchSpace:
    """The named search space, optionally with another number of classes.

    Raises:
        ConfigError: for an unknown name (lists the known names) or num_classes < 2.
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown space {name!r}; choose from {list_spaces()}")
    space = _REGISTRY[name]()
    if num_classes is not None:
        if num_classes < 2:
            raise ConfigError(f"num_classes = {num_classes} must be >= 2")
        space = replace(space, num_classes=num_classes)
    return space
