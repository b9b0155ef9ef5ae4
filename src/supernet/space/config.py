"""`ArchConfig`: one subnet of a supernet, as plain data.

An arch config names one choice per elastic dimension of Once-for-All (Cai et al., ICLR'20,
arXiv 1908.09791, Sec. 3.1): the input resolution, a kernel size and an expand ratio for every block
slot, and a depth for every stage. Only the first ``depth[s]`` blocks of stage ``s`` are active; the
values in inactive slots are kept (they must still be valid choices) so configs stay fixed-length.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from supernet.errors import ConfigError

if TYPE_CHECKING:
    from supernet.space.space import SearchSpace

__all__ = ["ArchConfig", "describe"]

_FIELDS = ("resolution", "kernel_size", "expand_ratio", "depth")


def _as_int_tuple(field: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError(f"{field} must be a sequence of integers, got {value!r}")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            else:
                raise ConfigError(f"{field}[{i}] = {v!r} is not an integer")
        out.append(int(v))
    return tuple(out)


@dataclass(frozen=True)
class ArchConfig:
    """One subnet: resolution, per-block kernel size and expand ratio, per-stage depth.

    Attributes:
        resolution: input height = width in pixels.
        kernel_size: depthwise kernel size of each block slot (length = sum of stage max depths).
        expand_ratio: inverted-bottleneck expand ratio of each block slot (same length).
        depth: number of active blocks in each elastic stage.

    Raises:
        ConfigError: (a ``ValueError``) on construction when a field is not an integer / integer
            sequence. Use :meth:`validate` to check the values against a search space.
    """

    resolution: int
    kernel_size: tuple[int, ...]
    expand_ratio: tuple[int, ...]
    depth: tuple[int, ...]

    def __post_init__(self) -> None:
        if isinstance(self.resolution, bool) or not isinstance(self.resolution, int):
            raise ConfigError(f"resolution must be an integer, got {self.resolution!r}")
        for field in ("kernel_size", "expand_ratio", "depth"):
            object.__setattr__(self, field, _as_int_tuple(field, getattr(self, field)))

    def validate(self, space: SearchSpace) -> ArchConfig:
        """Check every value against ``space``; return ``self`` so calls chain.

        Raises:
            ConfigError: naming the field, the bad value and the allowed choices, e.g.
                ``kernel_size[3] = 4 is not allowed in space 'mbv3-tiny'; choose from (3, 5, 7)``.
        """
        if self.resolution not in space.resolutions:
            raise ConfigError(
                f"resolution = {self.resolution} is not allowed in space {space.name!r}; "
                f"choose from {space.resolutions}"
            )
        n_slots = space.num_blocks
        for field, choices in (
            ("kernel_size", space.kernel_sizes),
            ("expand_ratio", space.expand_ratios),
        ):
            values = getattr(self, field)
            if len(values) != n_slots:
                raise ConfigError(
                    f"{field} has {len(values)} entries; space {space.name!r} has "
                    f"{n_slots} block slots (one entry each)"
                )
            for i, v in enumerate(values):
                if v not in choices:
                    raise ConfigError(
                        f"{field}[{i}] = {v} is not allowed in space {space.name!r}; "
                        f"choose from {choices}"
                    )
        if len(self.depth) != space.num_stages:
            raise ConfigError(
                f"depth has {len(self.depth)} entries; space {space.name!r} has "
                f"{space.num_stages} elastic stages (one entry each)"
            )
        for i, v in enumerate(self.depth):
            if v not in space.depths:
                raise ConfigError(
                    f"depth[{i}] = {v} is out of range in space {space.name!r}; "
                    f"choose from {space.depths}"
                )
        return self

    def active_blocks(self, stage_max_depths: tuple[int, ...]) -> list[int]:
        """Indices of the active block slots, given each stage's maximum depth."""
        out, start = [], 0
        for d, max_d in zip(self.depth, stage_max_depths, strict=True):
            out.extend(range(start, start + d))
            start += max_d
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with lists for the tuple fields."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: on missing or unknown keys (naming them and the allowed keys).
        """
        if not isinstance(data, dict):
            raise ConfigError(f"an arch config must be a mapping, got {type(data).__name__}")
        unknown = sorted((k for k in data if k not in _FIELDS), key=str)
        missing = [k for k in _FIELDS if k not in data]
        if unknown or missing:
            parts = [f"unknown {unknown}"] * bool(unknown) + [f"missing {missing}"] * bool(missing)
            raise ConfigError(
                f"arch config keys: {', '.join(parts)}; an arch config has all of {list(_FIELDS)}"
            )
        return cls(**{k: data[k] for k in _FIELDS})

    def to_json(self) -> str:
        """Compact JSON text."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ArchConfig:
        """Parse :meth:`to_json` output (``str``, or UTF-8 ``bytes``).

        Raises:
            ConfigError: ``text`` is not a string, not valid JSON (also: nested too deeply to
                parse), or of a bad structure.
        """
        if not isinstance(text, str | bytes | bytearray):
            raise ConfigError(f"arch config must be JSON text, got {type(text).__name__}")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # ValueError: also huge ints, bad UTF-8
            raise ConfigError(f"arch config is not valid JSON: {exc}") from exc
        return cls.from_dict(data)


def _run_length(values: tuple[int, ...]) -> str:
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j < len(values) and values[j] == values[i]:
            j += 1
        parts.append(f"{values[i]}x{j - i}" if j - i > 1 else str(values[i]))
        i = j
    return ",".join(parts)


def describe(config: ArchConfig) -> str:
    """Short text for tables: ``r28 d4,4,4,4,4 k7x20 e6x20`` (run lengths as ``valuexcount``)."""
    return (
        f"r{config.resolution} d{_run_length(config.depth)} "
        f"k{_run_length(config.kernel_size)} e{_run_length(config.expand_ratio)}"
    )
