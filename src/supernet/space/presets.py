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
- ``mbv3-tiny-w{W}-r{R}``: the TinyNAS family of ``mbv3-tiny`` (MCUNet, Lin et al., NeurIPS'20,
  arXiv 2007.10319, Sec. 3.1): every width scaled by the width multiplier ``W`` in
  :data:`TINYNAS_WIDTHS` (rounded to a multiple of 8) and the input fixed at ``R`` x ``R`` pixels,
  ``R`` in :data:`TINYNAS_RESOLUTIONS`; kernel size, expand ratio and depth stay elastic. Found by
  :func:`get_space` from the name (not listed by :func:`list_spaces`; see
  :func:`tinynas_space_names`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from supernet.errors import ConfigError
from supernet.space.space import SearchSpace, StageSpec, make_divisible

__all__ = [
    "MBV3_TINY_NOTES",
    "PROXYLESS_TINY_NOTES",
    "TINYNAS_RESOLUTIONS",
    "TINYNAS_WIDTHS",
    "get_space",
    "list_spaces",
    "register_space",
    "tinynas_space",
    "tinynas_space_names",
]

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


TINYNAS_WIDTHS = (0.25, 0.5, 0.75, 1.0)
"""Width multipliers of the TinyNAS family of a space (MCUNet, arXiv 2007.10319, Sec. 3.1)."""

TINYNAS_RESOLUTIONS = (16, 20, 24, 28, 32)
"""Input resolutions (pixels) of the TinyNAS family of ``mbv3-tiny``."""

_TINYNAS_BASES: dict[str, Callable[[], SearchSpace]] = {"mbv3-tiny": _mbv3_tiny}
_TINYNAS_NAME = re.compile(r"^(?P<base>.+)-w(?P<width>[0-9.]+)-r(?P<resolution>[0-9]+)$")


def tinynas_space(base: str, *, width_mult: float, resolution: int) -> SearchSpace:
    """One TinyNAS search space: ``base`` with every width (stem, stages, head) times
    ``width_mult`` rounded to a multiple of 8 (:func:`make_divisible`) and the input fixed at
    ``resolution``; named ``{base}-w{width_mult:g}-r{resolution}``.

    Raises:
        ConfigError: unknown base, or a width / resolution outside :data:`TINYNAS_WIDTHS` /
            :data:`TINYNAS_RESOLUTIONS` (names the value and the choices).

    Reference: MCUNet (Lin et al., NeurIPS'20, arXiv 2007.10319), Sec. 3.1 (search spaces
    parameterized by width multiplier and input resolution).
    """
    if base not in _TINYNAS_BASES:
        raise ConfigError(f"TinyNAS base space {base!r} is not known; choose from "
                          f"{sorted(_TINYNAS_BASES)}")  # fmt: skip
    if width_mult not in TINYNAS_WIDTHS:
        raise ConfigError(f"width multiplier {width_mult!r} is not allowed; choose from "
                          f"{TINYNAS_WIDTHS}")  # fmt: skip
    if resolution not in TINYNAS_RESOLUTIONS:
        raise ConfigError(f"resolution {resolution!r} is not allowed; choose from "
                          f"{TINYNAS_RESOLUTIONS}")  # fmt: skip
    space = _TINYNAS_BASES[base]()

    def w(c: int) -> int:
        return make_divisible(c * width_mult, 8)

    return replace(
        space,
        name=f"{base}-w{width_mult:g}-r{resolution}",
        resolutions=(resolution,),
        stages=tuple(replace(st, width=w(st.width)) for st in space.stages),
        stem_width=w(space.stem_width),
        first_block_width=w(space.first_block_width),
        final_expand_width=w(space.final_expand_width),
        feature_mix_width=w(space.feature_mix_width),
        width_mult=width_mult,
        reference="TinyNAS space family, MCUNet, arXiv 2007.10319, Sec. 3.1; " + space.reference,
    )


def tinynas_space_names(base: str = "mbv3-tiny") -> list[str]:
    """Names of every (width, resolution) space of ``base``'s TinyNAS family, widths outer."""
    return [f"{base}-w{w:g}-r{r}" for w in TINYNAS_WIDTHS for r in TINYNAS_RESOLUTIONS]


def _tinynas_from_name(name: str) -> SearchSpace | None:
    match = _TINYNAS_NAME.match(name)
    if match is None or match["base"] not in _TINYNAS_BASES:
        return None
    try:
        width = float(match["width"])
    except ValueError:
        return None
    if f"{width:g}" != match["width"]:
        return None  # one spelling per space: w0.5, not w0.50
    return tinynas_space(match["base"], width_mult=width, resolution=int(match["resolution"]))


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
    """The named search space (a registered one or a TinyNAS space such as
    ``mbv3-tiny-w0.5-r24``, see :func:`tinynas_space`), optionally with another number of classes.

    Raises:
        ConfigError: for an unknown name (lists the known names and the TinyNAS pattern), a
            TinyNAS width or resolution outside its choices, or num_classes < 2.
    """
    space = _REGISTRY[name]() if name in _REGISTRY else _tinynas_from_name(name)
    if space is None:
        raise ConfigError(
            f"unknown space {name!r}; choose from {list_spaces()} or a TinyNAS space "
            f"'mbv3-tiny-w{{W}}-r{{R}}' with W in {TINYNAS_WIDTHS}, R in {TINYNAS_RESOLUTIONS}"
        )
    if num_classes is not None:
        if num_classes < 2:
            raise ConfigError(f"num_classes = {num_classes} must be >= 2")
        space = replace(space, num_classes=num_classes)
    return space
