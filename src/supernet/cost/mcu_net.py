"""An MBConv network as a plain block list, the input of the MCU memory model
(:mod:`supernet.cost.mcu`): built from an arch config of a space, from a ``subnet.json``
(``space`` + ``config``), from a published MCUNet / TinyNAS model's JSON (``ProxylessNASNets``
format of mit-han-lab/mcunet) or from this module's own JSON layout (:meth:`BlockList.to_dict`).

Layout (MobileNetV2/V3, MCUNet's TinyNAS space): stem conv → MBConv blocks → optional 1x1
``final_expand`` conv (MCUNet's ``feature_mix_layer``) → global average pool → optional 1x1
``feature_mix`` conv on the pooled vector (MobileNetV3 only) → linear classifier.

Reference: MCUNet (Lin et al., NeurIPS'20, arXiv 2007.10319), Sec. 3.1 (TinyNAS MBConv space);
MobileNetV3 (Howard et al., arXiv 1905.02244), Sec. 5.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from supernet.errors import ConfigError
from supernet.nn import ElasticSqueezeExcite, mbconv_mid_channels
from supernet.space import ArchConfig, SearchSpace, describe, get_space
from supernet.space.space import ACTIVATIONS

__all__ = [
    "BlockList",
    "MBConvSpec",
    "block_list_from_config",
    "block_list_from_data",
    "load_block_list",
]


def _out_size(size: int, stride: int) -> int:
    """Output height of a conv with padding ``k // 2`` (odd ``k``): ``ceil(size / stride)``."""
    return -(-size // stride)


@dataclass(frozen=True)
class MBConvSpec:
    """One MBConv block: [1x1 expand] → kxk depthwise (stride) → [SE] → 1x1 project [+ skip].

    Attributes:
        in_channels, out_channels: block input / output channels.
        mid_channels: hidden channels; equal to ``in_channels`` with ``expand=False``.
        kernel_size: depthwise kernel size (odd).
        stride: depthwise stride (1 or 2).
        expand: whether a 1x1 expand conv exists (False for expand ratio 1).
        se_channels: squeeze-and-excitation hidden width, 0 without SE.
        residual: identity skip from the block input to its output.
        act: activation after expand and depthwise (``relu``, ``relu6``, ``h_swish``).
    """

    in_channels: int
    out_channels: int
    mid_channels: int
    kernel_size: int
    stride: int
    expand: bool = True
    se_channels: int = 0
    residual: bool = False
    act: str = "relu6"

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels", "mid_channels", "kernel_size", "stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"MBConv {name} = {value!r} must be an integer >= 1")
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"MBConv kernel_size = {self.kernel_size} must be odd")
        if self.se_channels < 0:
            raise ConfigError(f"MBConv se_channels = {self.se_channels} must be >= 0")
        if not self.expand and self.mid_channels != self.in_channels:
            raise ConfigError(
                f"MBConv without expand conv needs mid_channels = in_channels, got "
                f"{self.mid_channels} != {self.in_channels}"
            )
        if self.residual and (self.stride != 1 or self.in_channels != self.out_channels):
            raise ConfigError(
                f"MBConv residual needs stride 1 and in_channels = out_channels, got stride "
                f"{self.stride}, {self.in_channels} -> {self.out_channels}"
            )
        if self.act not in ACTIVATIONS:
            raise ConfigError(
                f"MBConv act = {self.act!r} is not allowed; choose from {ACTIVATIONS}"
            )


@dataclass(frozen=True)
class BlockList:
    """A whole MBConv network, batch 1, NCHW, square images.

    Attributes:
        name: a label.
        resolution: input height = width (pixels); input_channels: image channels.
        stem_channels, stem_kernel, stem_stride, stem_act: the first conv.
        blocks: the MBConv blocks in order (the first one's ``in_channels`` is ``stem_channels``).
        final_expand_channels: 1x1 conv before the pool (0: none).
        feature_mix_channels: 1x1 conv after the pool (0: none).
        num_classes: classifier outputs; head_act: activation of the head convs.
    """

    name: str
    resolution: int
    input_channels: int
    stem_channels: int
    blocks: tuple[MBConvSpec, ...]
    num_classes: int
    stem_kernel: int = 3
    stem_stride: int = 2
    stem_act: str = "relu6"
    final_expand_channels: int = 0
    feature_mix_channels: int = 0
    head_act: str = "relu6"
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        for name in ("resolution", "input_channels", "stem_channels", "num_classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"block list {name} = {value!r} must be an integer >= 1")
        channels = self.stem_channels
        for i, block in enumerate(self.blocks):
            if block.in_channels != channels:
                raise ConfigError(
                    f"block list {self.name!r}: blocks[{i}].in_channels = {block.in_channels}, "
                    f"but the layer before it outputs {channels} channels"
                )
            channels = block.out_channels

    @property
    def last_channels(self) -> int:
        """Channels entering the head (the last block's output, else the stem's)."""
        return self.blocks[-1].out_channels if self.blocks else self.stem_channels

    def sizes(self) -> list[tuple[int, int]]:
        """``(input size, output size)`` of every block, in pixels."""
        size = _out_size(self.resolution, self.stem_stride)
        out = []
        for block in self.blocks:
            out.append((size, _out_size(size, block.stride)))
            size = out[-1][1]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; :func:`load_block_list` / :meth:`from_dict` read it back."""
        data = asdict(self)
        data.pop("source")
        return {"format": "supernet-block-list", **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "block list") -> BlockList:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: unknown or missing fields, or a bad value (names the field).
        """
        values = {k: v for k, v in data.items() if k != "format"}
        known = [f for f in cls.__dataclass_fields__ if f != "source"]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {unknown}; known fields: {known}")
        try:
            blocks = tuple(MBConvSpec(**b) for b in values.pop("blocks", ()))
            return cls(**values, blocks=blocks, source=source)
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from exc


def block_list_from_config(config: ArchConfig, space: SearchSpace) -> BlockList:
    """The subnet of ``config`` as a block list, the same layers as
    :meth:`supernet.nn.OFAMobileNetV3.get_subnet` builds (one block at a time, no batching).

    Raises:
        ConfigError: ``config`` is not valid in ``space``.
    """
    config.validate(space)
    first = MBConvSpec(
        in_channels=space.stem_width,
        out_channels=space.first_block_width,
        mid_channels=space.stem_width,
        kernel_size=3,
        stride=1,
        expand=False,
        residual=space.stem_width == space.first_block_width,
        act="relu",
    )
    blocks, slot, channels = [first], 0, space.first_block_width
    for stage, depth in zip(space.stages, config.depth, strict=True):
        for i in range(stage.max_depth):
            if i < depth:
                mid = mbconv_mid_channels(channels, config.expand_ratio[slot])
                se = ElasticSqueezeExcite.mid_channels(mid) if stage.use_se else 0
                stride = stage.stride if i == 0 else 1
                blocks.append(MBConvSpec(channels, stage.width, mid, config.kernel_size[slot],
                                         stride, True, se, stride == 1 and channels == stage.width,
                                         stage.act))  # fmt: skip
                channels = stage.width
            slot += 1
    return BlockList(
        name=f"{space.name}: {describe(config)}",
        resolution=config.resolution,
        input_channels=space.input_channels,
        stem_channels=space.stem_width,
        stem_kernel=3,
        stem_stride=space.stem_stride,
        stem_act=space.head_act,
        blocks=tuple(blocks),
        final_expand_channels=space.final_expand_width,
        feature_mix_channels=space.feature_mix_width,
        num_classes=space.num_classes,
        head_act=space.head_act,
    )


def _mcunet_act(name: Any) -> str:
    return {"relu6": "relu6", "relu": "relu", "h_swish": "h_swish"}.get(name, "relu6")


def _from_mcunet(data: dict[str, Any], source: str) -> BlockList:
    """A ``ProxylessNASNets`` JSON of mit-han-lab/mcunet (``first_conv``, ``blocks`` of
    ``MobileInvertedResidualBlock``, ``feature_mix_layer``, ``classifier``, ``resolution``)."""
    try:
        stem = data["first_conv"]
        blocks = []
        for b in data["blocks"]:
            conv = b["mobile_inverted_conv"]
            if conv is None or conv.get("name") == "ZeroLayer":
                continue  # an identity block: no layer, no memory (as MCUNet counts it)
            expand_ratio = conv["expand_ratio"]
            mid = conv.get("mid_channels") or round(conv["in_channels"] * expand_ratio)
            use_se = bool(conv.get("use_se"))
            shortcut = b.get("shortcut")
            blocks.append(MBConvSpec(
                in_channels=conv["in_channels"], out_channels=conv["out_channels"],
                mid_channels=mid if expand_ratio != 1 else conv["in_channels"],
                kernel_size=conv["kernel_size"], stride=conv["stride"],
                expand=expand_ratio != 1,
                se_channels=(mid // 4) if use_se else 0,
                residual=shortcut is not None and shortcut.get("name") != "ZeroLayer",
                act=_mcunet_act(conv.get("act_func")),
            ))  # fmt: skip
        mix = data.get("feature_mix_layer")
        return BlockList(
            name=str(data.get("name", "ProxylessNASNets")),
            resolution=int(data["resolution"]),
            input_channels=stem["in_channels"],
            stem_channels=stem["out_channels"],
            stem_kernel=stem["kernel_size"],
            stem_stride=stem["stride"],
            stem_act=_mcunet_act(stem.get("act_func")),
            blocks=tuple(blocks),
            final_expand_channels=mix["out_channels"] if mix else 0,
            feature_mix_channels=0,
            num_classes=data["classifier"]["out_features"],
            head_act=_mcunet_act(mix.get("act_func") if mix else "relu6"),
            source=source,
        )
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{source}: not a ProxylessNASNets config ({exc!r} missing)") from exc


def block_list_from_data(data: Any, *, source: str = "block list") -> BlockList:
    """A block list from parsed JSON in any of the formats this module reads (see the module
    docstring); the format is told by its keys.

    Raises:
        ConfigError: none of the formats, or a bad value (names the source and field).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a JSON object, got {type(data).__name__}")
    if data.get("format") == "supernet-block-list":
        return BlockList.from_dict(data, source=source)
    if "first_conv" in data and "blocks" in data:
        return _from_mcunet(data, source)
    if "space" in data and "config" in data:
        space = get_space(str(data["space"]))
        return block_list_from_config(ArchConfig.from_dict(data["config"]), space)
    raise ConfigError(
        f"{source}: not a block list; expected a supernet block list (format: "
        f"supernet-block-list), a subnet.json (space, config) or an MCUNet ProxylessNASNets "
        f"config (first_conv, blocks, classifier, resolution)"
    )


def load_block_list(path: str | Path) -> BlockList:
    """Read a block list from a JSON file (see :func:`block_list_from_data`).

    Raises:
        FileNotFoundError: no such file.
        ConfigError: not UTF-8 JSON or not a block list.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"block list file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"block list file {str(path)!r} is not valid JSON: {exc}") from exc
    return block_list_from_data(data, source=f"block list file {str(path)!r}")
