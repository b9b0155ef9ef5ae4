"""Latency lookup tables: one measured latency per distinct block, summed to predict a subnet.

A subnet of a MobileNetV3 space is a stem (stem conv + the fixed first block), the active MBConv
blocks and a head (final 1x1 expand, global pool, feature mix, classifier). Each is measured once
per distinct shape and stored under a readable key (:mod:`supernet.cost.lut_keys`). A subnet's
predicted latency is
``scale * (stem + sum of its active blocks + head - parts * call_overhead_ms) + overhead_ms``:
``call_overhead_ms`` is the measured cost of one runtime call (each part was timed as its own
call; the subnet pays one call in all), ``scale`` and ``overhead_ms`` are fitted on whole
subnets measured while building (:mod:`supernet.cost.lut_build`).

Tables are JSON files with a format version, the library version, the device description, the
machine and the exact space definition; a table of another format version, space or runtime, or
a query needing a key the table lacks, raises :class:`~supernet.errors.LatencyTableError` —
never a silent zero. A table written by another library version is read with a logged warning.

Reference: Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Sec. 3.4 and App. (latency
lookup tables per device); ProxylessNAS (Cai, Zhu, Han; ICLR'19; arXiv 1812.00332), Sec. 3.3
(latency as a sum of per-block table entries).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from supernet import __version__
from supernet.checkpoint import write_text_atomic
from supernet.cost.device import DeviceSpec
from supernet.cost.lut_keys import (
    SlotSpec,
    block_key,
    config_keys,
    conv_out_size,
    feature_sizes,
    head_key,
    slot_specs,
    stem_key,
)
from supernet.errors import ConfigError, LatencyTableError
from supernet.space import ArchConfig, ConfigBatch, SearchSpace, StageSpec, describe, get_space

__all__ = [
    "FORMAT_VERSION",
    "LatencyTable",
    "SlotSpec",
    "block_key",
    "check_space",
    "config_keys",
    "conv_out_size",
    "feature_sizes",
    "head_key",
    "load_latency_table",
    "slot_specs",
    "stem_key",
]

FORMAT_VERSION = 1
"""Version of the JSON layout of a latency table."""

logger = logging.getLogger(__name__)


def _space_fields(space: SearchSpace) -> dict[str, Any]:
    """The space definition as JSON data (without its free-text reference)."""
    data = json.loads(json.dumps(dataclasses.asdict(space)))
    data.pop("reference", None)
    return data


def _defaults(cls: type) -> dict[str, Any]:
    return {
        f.name: json.loads(json.dumps(f.default))
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING
    }


def _with_defaults(stored: dict[str, Any]) -> dict[str, Any]:
    """``stored`` space fields with the defaults of fields it lacks (top level and stages)."""
    out = {k: v for k, v in _defaults(SearchSpace).items() if k != "reference"}
    out.update(stored)
    if isinstance(out.get("stages"), list):
        stage_defaults = _defaults(StageSpec)
        out["stages"] = [
            {**stage_defaults, **stage} if isinstance(stage, dict) else stage
            for stage in out["stages"]
        ]
    return out


def check_space(
    where: str, stored_name: str, stored_fields: dict[str, Any] | None, space: SearchSpace
) -> None:
    """Raise unless a table built for ``stored_name``/``stored_fields`` covers ``space``.

    A field the stored definition lacks (added to :class:`SearchSpace` or :class:`StageSpec`
    after the table was built) counts as its default value, so a table stays valid while the
    space it measured is unchanged.

    Raises:
        LatencyTableError: another space, or another definition of it (names differing fields).
    """
    if stored_name != space.name:
        raise LatencyTableError(f"{where} was built for space {stored_name!r}, not {space.name!r}")
    fields, stored = _space_fields(space), _with_defaults(stored_fields or {})
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

    The file is parsed as plain JSON and every field is checked before a table is built: its
    ``format_version`` must be :data:`FORMAT_VERSION`, unknown fields are refused, latencies must
    be finite numbers >= 0 (ms). A table written by another library version is read with a
    logged warning: the format version decides whether it can be read.

    Args:
        path: the JSON file.
        space: the space it must cover (default: the registered space of the stored name).
        runtime: the runtime it must have been measured with (default: any).

    Raises:
        FileNotFoundError: no such file.
        LatencyTableError: not a latency table (not UTF-8 JSON, not an object, a missing,
            unknown or malformed field), another format version, built for another space (or
            another definition of the same space; names the differing fields) or runtime. The
            message names the file, the field, the value found and what is expected.
    """
    path = Path(path)
    where = f"latency table {str(path)!r}"
    if not path.is_file():
        raise FileNotFoundError(f"{where} does not exist")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # also bad UTF-8 and huge ints
        raise LatencyTableError(f"{where} is not a latency table (not JSON: {exc})") from exc
    if not isinstance(data, dict) or "entries" not in data or "space" not in data:
        raise LatencyTableError(f"{where} is not a latency table (no space or entries)")
    version = data.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise LatencyTableError(
            f"{where} has format_version {version!r}; this supernet reads {FORMAT_VERSION}; "
            "rebuild it"
        )
    unknown = sorted(set(data) - set(_FILE_FIELDS))
    if unknown:
        raise LatencyTableError(f"{where} has unknown field(s) {unknown}; known: {_FILE_FIELDS}")
    name, fields = data["space"], data.get("space_fields")
    if not isinstance(name, str) or not isinstance(fields, dict | None):
        raise LatencyTableError(
            f"{where}: space = {name!r} must be a name, space_fields = {fields!r} a mapping"
        )
    if space is None:
        try:
            space = get_space(name)
        except ConfigError as exc:
            raise LatencyTableError(f"{where}: {exc}") from exc
    check_space(where, name, fields, space)
    if runtime is not None and data.get("runtime") != runtime:
        raise LatencyTableError(
            f"{where} was measured with runtime {data.get('runtime')!r}, not {runtime!r}"
        )
    try:
        device = DeviceSpec.from_dict(data.get("device"), source=f"device in {where}")
    except ConfigError as exc:
        raise LatencyTableError(f"{where} is malformed: {exc}") from exc
    if data.get("runtime", device.runtime) != device.runtime:
        raise LatencyTableError(
            f"{where}: runtime = {data['runtime']!r} differs from its device's runtime "
            f"{device.runtime!r}"
        )
    library_version = data.get("library_version", "unknown")
    if library_version != __version__:
        logger.warning(
            "%s was written by supernet %s, this is supernet %s; reading it (same format "
            "version)", where, library_version, __version__,
        )  # fmt: skip
    return LatencyTable(
        space=space,
        device=device,
        entries=_entries(data["entries"], where),
        scale=_number(data, "scale", 1.0, where),
        overhead_ms=_number(data, "overhead_ms", 0.0, where),
        call_overhead_ms=_number(data, "call_overhead_ms", 0.0, where, low=0.0),
        memory_format=_memory_format(data.get("memory_format", "contiguous"), where),
        machine=_mapping(data, "machine", where),
        build=_build(_mapping(data, "build", where), where),
        library_version=str(library_version),
    )


_FILE_FIELDS = (
    "format_version", "library_version", "space", "space_fields", "runtime", "device", "machine",
    "memory_format", "scale", "overhead_ms", "call_overhead_ms", "build", "entries",
)  # fmt: skip
_MEMORY_FORMATS = ("contiguous", "channels_last", "onnx")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(data: dict, key: str, default: float, where: str, low: float | None = None) -> float:
    value = data.get(key, default)
    if not _is_number(value) or (low is not None and value < low):
        allowed = "a finite number" + (f" >= {low}" if low is not None else "")
        raise LatencyTableError(f"{where}: {key} = {value!r} must be {allowed}")
    return float(value)


def _mapping(data: dict, key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise LatencyTableError(f"{where}: {key} = {value!r} must be a mapping")
    return value


def _memory_format(value: Any, where: str) -> str:
    if value not in _MEMORY_FORMATS:
        raise LatencyTableError(
            f"{where}: memory_format = {value!r} is not allowed; choose from {_MEMORY_FORMATS}"
        )
    return value


def _build(build: dict[str, Any], where: str) -> dict[str, Any]:
    for key, low in (("repeats", 1), ("warmup", 0)):
        value = build.get(key, low)
        if type(value) is not int or value < low:
            raise LatencyTableError(f"{where}: build.{key} = {value!r} must be an integer >= {low}")
    return build


def _entries(raw: Any, where: str) -> dict[str, tuple[float, float]]:
    """``{key: {"median_ms", "iqr_ms"}}`` → ``{key: (median_ms, iqr_ms)}``, every value checked."""
    if not isinstance(raw, dict):
        raise LatencyTableError(f"{where}: entries = {type(raw).__name__} must be a mapping")
    entries = {}
    for key, value in raw.items():
        if not isinstance(value, dict) or set(value) != {"median_ms", "iqr_ms"}:
            raise LatencyTableError(
                f"{where}: entries[{key!r}] = {value!r} must be {{'median_ms': ..., 'iqr_ms': ...}}"
            )
        if not all(_is_number(v) and v >= 0 for v in value.values()):
            raise LatencyTableError(
                f"{where}: entries[{key!r}] = {value!r} must hold finite latencies >= 0 (ms)"
            )
        entries[key] = (float(value["median_ms"]), float(value["iqr_ms"]))
    return entries
