"""Latency lookup tables: one measured latency per distinct block, summed to predict a subnet.

A subnet of a MobileNetV3 space is a stem (stem conv + the fixed first block), the active MBConv
blocks and a head (final 1x1 expand, global pool, feature mix, classifier). Each is measured once
per distinct shape and stored under a readable key::

    stem hw=28 in=1 out=16
    mbconv hw=14 in=16 out=16 k=5 e=4 s=2 se=0 act=relu
    head hw=4 in=64 expand=384 mix=512 classes=10

(``hw``: input feature-map height = width). A subnet's predicted latency is
``scale * (stem + sum of its active blocks + head - parts * call_overhead_ms) + overhead_ms``:
``call_overhead_ms`` is the measured cost of one runtime call (each part was timed as its own
call; the subnet pays one call in all), ``scale`` and ``overhead_ms`` are fitted on whole
subnets measured while building (:mod:`supernet.cost.lut_build`).

Tables are JSON files with the device description, the machine, the library version and the exact
space definition; a table for another space or runtime, or a query needing a key the table lacks,
raises :class:`~supernet.errors.LatencyTableError` — never a silent zero.

Reference: Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Sec. 3.4 and App. (latency
lookup tables per device); ProxylessNAS (Cai, Zhu, Han; ICLR'19; arXiv 1812.00332), Sec. 3.3
(latency as a sum of per-block table entries).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from supernet import __version__
from supernet.checkpoint import write_text_atomic
from supernet.cost.device import DeviceSpec
from supernet.errors import ConfigError, LatencyTableError
from supernet.nn import OFAMobileNetV3
from supernet.space import ArchConfig, ConfigBatch, SearchSpace, describe, get_space

__all__ = [
    "FORMAT_VERSION",
    "LatencyTable",
    "SlotSpec",
    "block_key",
    "check_space",
    "config_keys",
    "feature_sizes",
    "head_key",
    "load_latency_table",
    "slot_specs",
    "stem_key",
]

FORMAT_VERSION = 1
"""Version of the JSON layout of a latency table."""


@dataclass(frozen=True)
class SlotSpec:
    """The fixed part of one elastic block slot: what a lookup key needs besides k, e and hw."""

    in_channels: int
    out_channels: int
    stride: int
    act: str
    use_se: bool
    stage: int
    position: int


@functools.lru_cache(maxsize=8)
def slot_specs(space: SearchSpace) -> tuple[SlotSpec, ...]:
    """Channels, stride, activation and SE of every block slot, read off the supernet's blocks
    (so the table follows :class:`OFAMobileNetV3`'s wiring, not a copy of it)."""
    with torch.random.fork_rng(devices=[]):
        net = OFAMobileNetV3(space)
    stage_of = [(s, p) for s, st in enumerate(space.stages) for p in range(st.max_depth)]
    return tuple(
        SlotSpec(b.in_channels, b.out_channels, b.stride, b.act_name, b.se is not None, s, p)
        for b, (s, p) in zip(net.blocks, stage_of, strict=True)
    )


def conv_out_size(size: int, stride: int) -> int:
    """Output height of a ``ConvBNAct`` with odd kernel and padding ``k // 2``: ``ceil(H / s)``."""
    return -(-size // stride)


def feature_sizes(space: SearchSpace, resolution: int) -> tuple[int, list[int], int]:
    """Input feature-map sizes: of the first block, of every block slot, and of the head."""
    hw = conv_out_size(resolution, space.stem_stride)
    slots = []
    for spec in slot_specs(space):
        slots.append(hw)
        hw = conv_out_size(hw, spec.stride)
    return conv_out_size(resolution, space.stem_stride), slots, hw


def stem_key(space: SearchSpace, resolution: int) -> str:
    """Key of the stem conv + first block at input ``resolution``."""
    return f"stem hw={resolution} in={space.input_channels} out={space.first_block_width}"


def block_key(spec: SlotSpec, hw: int, kernel_size: int, expand_ratio: int) -> str:
    """Key of one MBConv block with input ``hw x hw``."""
    return (
        f"mbconv hw={hw} in={spec.in_channels} out={spec.out_channels} k={kernel_size} "
        f"e={expand_ratio} s={spec.stride} se={int(spec.use_se)} act={spec.act}"
    )


def head_key(space: SearchSpace, hw: int) -> str:
    """Key of final expand + pool + feature mix + classifier with input ``hw x hw``."""
    return (
        f"head hw={hw} in={space.stages[-1].width} expand={space.final_expand_width} "
        f"mix={space.feature_mix_width} classes={space.num_classes}"
    )


def config_keys(space: SearchSpace, config: ArchConfig) -> list[str]:
    """Keys a config's latency is summed over: stem, active blocks in order, head."""
    _, slot_hw, head_hw = feature_sizes(space, config.resolution)
    specs = slot_specs(space)
    keys = [stem_key(space, config.resolution)]
    for i in config.active_blocks(space.stage_max_depths):
        keys.append(block_key(specs[i], slot_hw[i], config.kernel_size[i], config.expand_ratio[i]))
    return [*keys, head_key(space, head_hw)]


def _space_fields(space: SearchSpace) -> dict[str, Any]:
    """The space definition as JSON data (without its free-text reference)."""
    data = json.loads(json.dumps(dataclasses.asdict(space)))
    data.pop("reference", None)
    return data


def check_space(
    where: str, stored_name: str, stored_fields: dict[str, Any] | None, space: SearchSpace
) -> None:
    """Raise unless a table built for ``stored_name``/``stored_fields`` covers ``space``.

    Raises:
        LatencyTableError: another space, or another definition of it (names differing fields).
    """
    if stored_name != space.name:
        raise LatencyTableError(f"{where} was built for space {stored_name!r}, not {space.name!r}")
    fields, stored = _space_fields(space), stored_fields or {}
    differ = sorted(k for k in set(fields) | set(stored) if fields.get(k) != stored.get(k))
    if differ:
        raise LatencyTableError(
            f"{where} was built for another definition of space {space.name!r} "
            f"(differing fields: {differ}); rebuild it"
        )


@dataclass(frozen=True, eq=False)
class LatencyTable:
    """Per-block latencies of a space on one device, and the fitted whole-subnet correction.

    Every latency is of one forward pass of ``device.batch_size`` images, in ms.

    Attributes:
        space: the search space the table covers.
        device: runtime, threads and batch size the entries were measured with.
        entries: key → ``(median_ms, iqr_ms)`` of one block (see the module doc for keys).
        scale: fitted factor on the summed block latencies.
        overhead_ms: fitted constant added per subnet, in ms.
        call_overhead_ms: measured cost of one runtime call, in ms; every entry was timed as its
            own call, so it is taken off each stem, block and head before summing.
        memory_format: torch layout used (``"contiguous"``/``"channels_last"``; ``"onnx"``).
        machine: :func:`~supernet.cost.device.describe_machine` of the measuring machine.
        build: how it was built (repeats, warmup, seconds, the fit's configs and latencies).
        library_version: ``supernet.__version__`` that built it.
    """

    space: SearchSpace
    device: DeviceSpec
    entries: dict[str, tuple[float, float]]
    scale: float = 1.0
    overhead_ms: float = 0.0
    call_overhead_ms: float = 0.0
    memory_format: str = "contiguous"
    machine: dict[str, Any] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)
    library_version: str = __version__

    def __post_init__(self) -> None:
        space, specs = self.space, slot_specs(self.space)
        n_r, n_s = len(space.resolutions), len(specs)
        n_k, n_e = len(space.kernel_sizes), len(space.expand_ratios)
        median = {k: v[0] for k, v in self.entries.items()}
        stem = np.full(n_r, np.nan)
        head = np.full(n_r, np.nan)
        blocks = np.full((n_r, n_s, n_k, n_e), np.nan)
        for ri, r in enumerate(space.resolutions):
            _, slot_hw, head_hw = feature_sizes(space, r)
            stem[ri] = median.get(stem_key(space, r), np.nan)
            head[ri] = median.get(head_key(space, head_hw), np.nan)
            for si, spec in enumerate(specs):
                for ki, k in enumerate(space.kernel_sizes):
                    for ei, e in enumerate(space.expand_ratios):
                        key = block_key(spec, slot_hw[si], k, e)
                        blocks[ri, si, ki, ei] = median.get(key, np.nan)
        object.__setattr__(self, "_stem_ms", stem)
        object.__setattr__(self, "_head_ms", head)
        object.__setattr__(self, "_block_ms", blocks)
        stage = np.array([s.stage for s in specs])
        position = np.array([s.position for s in specs])
        object.__setattr__(self, "_slot_stage", stage)
        object.__setattr__(self, "_slot_position", position)

    @property
    def runtime(self) -> str:
        return self.device.runtime

    def check_space(self, space: SearchSpace) -> None:
        """Raise :class:`LatencyTableError` unless this table covers ``space``."""
        check_space("the latency table", self.space.name, _space_fields(self.space), space)

    # --- prediction -----------------------------------------------------------------------------
    def _indices(self, configs: Sequence[ArchConfig] | ConfigBatch) -> tuple[np.ndarray, ...]:
        space = self.space
        n_s, n_stages = space.num_blocks, space.num_stages
        if isinstance(configs, ConfigBatch):
            configs.validate(space)  # raises, naming the row, field, value and choices
            res, kernel = configs.resolution, configs.kernel_size
            expand, depth = configs.expand_ratio, configs.depth
        else:
            for c in configs:
                if (
                    len(c.kernel_size) != n_s
                    or len(c.expand_ratio) != n_s
                    or len(c.depth) != n_stages
                ):
                    c.validate(space)  # raises, naming the field and the expected length
            res = np.array([c.resolution for c in configs], dtype=np.int64)
            kernel = np.array([c.kernel_size for c in configs], dtype=np.int64).reshape(-1, n_s)
            expand = np.array([c.expand_ratio for c in configs], dtype=np.int64).reshape(-1, n_s)
            depth = np.array([c.depth for c in configs], dtype=np.int64).reshape(-1, n_stages)
        out = []
        for values, choices in (
            (res, space.resolutions),
            (kernel, space.kernel_sizes),
            (expand, space.expand_ratios),
        ):
            choices_arr = np.asarray(choices)
            idx = np.clip(np.searchsorted(choices_arr, values), 0, len(choices) - 1)
            wrong = choices_arr[idx] != values
            if wrong.any():
                configs[int(np.argwhere(wrong)[0][0])].validate(space)  # raises, naming the value
            out.append(idx)
        if not np.isin(depth, space.depths).all():
            configs[int(np.argwhere(~np.isin(depth, space.depths))[0][0])].validate(space)
        active = self._slot_position[None, :] < depth[:, self._slot_stage]
        return (*out, active)

    def summed_ms(self, configs: Sequence[ArchConfig] | ConfigBatch) -> np.ndarray:
        """Stem + active blocks + head from the table, before scale and overhead.

        Shapes: ``len(configs)`` configs (a list or a :class:`ConfigBatch`) → ``[N]`` float64,
        in ms.

        Raises:
            ConfigError: a config is not valid in the table's space.
            LatencyTableError: the table lacks an entry a config needs (names the key).
        """
        if not isinstance(configs, ConfigBatch):
            configs = list(configs)
        if len(configs) == 0:
            return np.zeros(0)
        r, k, e, active = self._indices(configs)
        slots = np.arange(self.space.num_blocks)[None, :]
        block = self._block_ms[r[:, None], slots, k, e]
        stem, head = self._stem_ms[r], self._head_ms[r]
        missing = (np.isnan(block) & active).any(1) | np.isnan(stem) | np.isnan(head)
        if missing.any():
            n = int(np.argmax(missing))
            key = next(k for k in config_keys(self.space, configs[n]) if k not in self.entries)
            raise LatencyTableError(
                f"latency table for space {self.space.name!r} ({self.runtime}) has no entry "
                f"{key!r}, needed by config #{n} ({describe(configs[n])}); rebuild the table"
            )
        parts = 2 + active.sum(1)
        return stem + head + np.where(active, block, 0.0).sum(1) - parts * self.call_overhead_ms

    def predict(self, configs: Sequence[ArchConfig] | ConfigBatch) -> np.ndarray:
        """Predicted latency of each config: ``scale * summed_ms + overhead_ms``.

        Shapes: ``len(configs)`` configs (a list or a :class:`ConfigBatch`) → ``[N]`` float64,
        in ms.

        Raises:
            ConfigError: a config is not valid in the table's space.
            LatencyTableError: the table lacks an entry a config needs (names the key).
        """
        return self.scale * self.summed_ms(configs) + self.overhead_ms

    # --- files ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the file layout)."""
        return {
            "format_version": FORMAT_VERSION,
            "library_version": self.library_version,
            "space": self.space.name,
            "space_fields": _space_fields(self.space),
            "runtime": self.runtime,
            "device": self.device.to_dict(),
            "machine": self.machine,
            "memory_format": self.memory_format,
            "scale": self.scale,
            "overhead_ms": self.overhead_ms,
            "call_overhead_ms": self.call_overhead_ms,
            "build": self.build,
            "entries": {k: {"median_ms": m, "iqr_ms": q} for k, (m, q) in self.entries.items()},
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the table as JSON, atomically; create the parent directory. Returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")
        return path


def load_latency_table(
    path: str | os.PathLike[str],
    *,
    space: SearchSpace | None = None,
    runtime: str | None = None,
) -> LatencyTable:
    """Read a table written by :meth:`LatencyTable.save` and check it fits the query.

    Args:
        path: the JSON file.
        space: the space it must cover (default: the registered space of the stored name).
        runtime: the runtime it must have been measured with (default: any).

    Raises:
        FileNotFoundError: no such file.
        LatencyTableError: not a latency table, another format version, built for another space
            (or another definition of the same space; names the differing fields) or runtime.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"latency table {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LatencyTableError(f"{str(path)!r} is not a latency table (invalid JSON)") from exc
    if not isinstance(data, dict) or "entries" not in data or "space" not in data:
        raise LatencyTableError(f"{str(path)!r} is not a latency table (no space or entries)")
    if data.get("format_version") != FORMAT_VERSION:
        raise LatencyTableError(
            f"latency table {str(path)!r} has format_version {data.get('format_version')!r}; "
            f"this supernet reads {FORMAT_VERSION}; rebuild it"
        )
    if space is None:
        try:
            space = get_space(data["space"])
        except ConfigError as exc:
            raise LatencyTableError(f"latency table {str(path)!r}: {exc}") from exc
    check_space(f"latency table {str(path)!r}", data["space"], data.get("space_fields"), space)
    if runtime is not None and data["runtime"] != runtime:
        raise LatencyTableError(
            f"latency table {str(path)!r} was measured with runtime {data['runtime']!r}, "
            f"not {runtime!r}"
        )
    try:
        device = DeviceSpec.from_dict(data["device"], source=f"device in {str(path)!r}")
        entries = {
            k: (float(v["median_ms"]), float(v["iqr_ms"])) for k, v in data["entries"].items()
        }
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        raise LatencyTableError(f"latency table {str(path)!r} is malformed: {exc}") from exc
    return LatencyTable(
        space=space,
        device=device,
        entries=entries,
        scale=float(data.get("scale", 1.0)),
        overhead_ms=float(data.get("overhead_ms", 0.0)),
        call_overhead_ms=float(data.get("call_overhead_ms", 0.0)),
        memory_format=str(data.get("memory_format", "contiguous")),
        machine=dict(data.get("machine", {})),
        build=dict(data.get("build", {})),
        library_version=str(data.get("library_version", "unknown")),
    )
