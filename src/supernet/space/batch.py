"""`ConfigBatch`: N arch configs of one search space as integer arrays.

Search scores whole populations at once (Once-for-All's evolutionary search, arXiv 1908.09791,
Sec. 3.4 and App.); holding a population as four arrays instead of N frozen dataclasses lets
sampling, mutation, crossover, constraint checks, encodings and cost models run as a handful of
numpy operations per generation. ``ConfigBatch.from_configs`` / ``to_configs`` convert to and
from :class:`~supernet.space.config.ArchConfig` for everything that takes one subnet at a time.

Vectorized sampling, mutation and crossover of batches live in :mod:`supernet.space.operators`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from supernet.errors import ConfigError
from supernet.space.config import ArchConfig
from supernet.space.space import SearchSpace

__all__ = ["ConfigBatch", "choice_arrays", "choice_index"]

_FIELDS = ("resolution", "kernel_size", "expand_ratio", "depth")


def _int_array(label: str, value: Any, ndim: int) -> np.ndarray:
    arr = np.asarray(value)
    whole_floats = arr.dtype.kind == "f" and np.array_equal(arr, np.round(arr))
    if arr.dtype.kind not in "iu" and not whole_floats:
        raise ConfigError(f"{label} must hold integers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ConfigError(f"{label} must be {ndim}-D, got shape {arr.shape}")
    arr = arr.astype(np.int64, copy=True)
    arr.flags.writeable = False
    return arr


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False, repr=False)
class ConfigBatch:
    """N arch configs as read-only int64 arrays (one row per config).

    Shapes: ``resolution [N]`` (pixels), ``kernel_size [N, B]`` and ``expand_ratio [N, B]``
    (B block slots), ``depth [N, S]`` (S elastic stages). As in :class:`ArchConfig`, slots beyond
    a stage's depth are inactive but still hold valid choices (see :meth:`active_mask`).

    Construction checks dtypes and shapes only; :meth:`validate` checks values against a space.

    Raises:
        ConfigError: (a ``ValueError``) on non-integer values, wrong array ranks or rows that
            disagree in number.
    """

    resolution: np.ndarray
    kernel_size: np.ndarray
    expand_ratio: np.ndarray
    depth: np.ndarray

    FIELDS: ClassVar[tuple[str, ...]] = ("resolution", "kernel_size", "expand_ratio", "depth")

    def __post_init__(self) -> None:
        for name, ndim in zip(_FIELDS, (1, 2, 2, 2), strict=True):
            value = _int_array(f"ConfigBatch.{name}", getattr(self, name), ndim)
            object.__setattr__(self, name, value)
        rows = {name: getattr(self, name).shape[0] for name in _FIELDS}
        if len(set(rows.values())) != 1:
            raise ConfigError(f"ConfigBatch fields disagree in number of rows: {rows}")
        if self.kernel_size.shape != self.expand_ratio.shape:
            raise ConfigError(
                f"ConfigBatch.kernel_size {self.kernel_size.shape} and expand_ratio "
                f"{self.expand_ratio.shape} must have the same shape"
            )

    @classmethod
    def _trusted(
        cls, resolution: np.ndarray, kernel: np.ndarray, expand: np.ndarray, depth: np.ndarray
    ) -> ConfigBatch:
        """Wrap arrays already known to be int64 with consistent shapes, without the checks of
        ``__init__`` (for the hot paths of :mod:`supernet.space`; takes ownership of the arrays)."""
        batch = object.__new__(cls)
        for name, arr in zip(_FIELDS, (resolution, kernel, expand, depth), strict=True):
            object.__setattr__(batch, name, _frozen(arr))
        return batch

    # --- conversion -----------------------------------------------------------------------------
    @classmethod
    def from_configs(cls, configs: Sequence[ArchConfig], space: SearchSpace) -> ConfigBatch:
        """Stack ``configs`` (validated against ``space``).

        Shapes: N configs → a batch of N rows (N may be 0).

        Raises:
            ConfigError: for the first config that is not valid in ``space`` (names the config's
                index, the field, the value and the choices).
        """
        configs = list(configs)
        n, b, s = len(configs), space.num_blocks, space.num_stages
        for i, c in enumerate(configs):
            if len(c.kernel_size) != b or len(c.expand_ratio) != b or len(c.depth) != s:
                try:
                    c.validate(space)
                except ConfigError as exc:
                    raise ConfigError(f"config #{i}: {exc}") from None
        batch = cls._trusted(
            np.array([c.resolution for c in configs], dtype=np.int64).reshape(n),
            np.array([c.kernel_size for c in configs], dtype=np.int64).reshape(n, b),
            np.array([c.expand_ratio for c in configs], dtype=np.int64).reshape(n, b),
            np.array([c.depth for c in configs], dtype=np.int64).reshape(n, s),
        )
        return batch.validate(space)

    def to_configs(self) -> list[ArchConfig]:
        """One :class:`ArchConfig` per row."""
        return [
            ArchConfig(resolution=r, kernel_size=k, expand_ratio=e, depth=d)
            for r, k, e, d in zip(
                self.resolution.tolist(),
                self.kernel_size.tolist(),
                self.expand_ratio.tolist(),
                self.depth.tolist(),
                strict=True,
            )
        ]

    @classmethod
    def repeat(cls, config: ArchConfig, n: int) -> ConfigBatch:
        """``n`` copies of one config (not validated)."""
        return cls._trusted(
            np.full(n, config.resolution, dtype=np.int64),
            np.tile(np.asarray(config.kernel_size, dtype=np.int64), (n, 1)),
            np.tile(np.asarray(config.expand_ratio, dtype=np.int64), (n, 1)),
            np.tile(np.asarray(config.depth, dtype=np.int64), (n, 1)),
        )

    @staticmethod
    def concat(batches: Sequence[ConfigBatch]) -> ConfigBatch:
        """Rows of all ``batches`` in order.

        Raises:
            ConfigError: when ``batches`` is empty or their numbers of block slots / stages differ.
        """
        if not batches:
            raise ConfigError("ConfigBatch.concat needs at least one batch")
        widths = {(b.kernel_size.shape[1], b.depth.shape[1]) for b in batches}
        if len(widths) != 1:
            raise ConfigError(
                f"cannot concatenate batches of different (block slots, stages): {sorted(widths)}"
            )
        return ConfigBatch._trusted(
            *(np.concatenate([getattr(b, name) for b in batches]) for name in _FIELDS)
        )

    def to_choice_indices(self, space: SearchSpace) -> np.ndarray:
        """Each value as the index of its choice in ``space`` (a gene vector for integer-coded
        optimizers).

        Shapes: ``[N, 1 + 2B + S]`` int64, columns ``resolution, kernel_size[0..B),
        expand_ratio[0..B), depth[0..S)``.

        Raises:
            ConfigError: when a value is not valid in ``space``.
        """
        r, k, e, d = choice_index(self, space)
        return np.concatenate([r[:, None], k, e, d], axis=1)

    @classmethod
    def from_choice_indices(cls, indices: np.ndarray, space: SearchSpace) -> ConfigBatch:
        """Inverse of :meth:`to_choice_indices`.

        Shapes: ``[N, 1 + 2B + S]`` integer (float arrays of whole numbers are accepted) → N rows.

        Raises:
            ConfigError: on a wrong number of columns or an index outside its choices.
        """
        idx = _int_array("choice indices", indices, 2)
        b, s = space.num_blocks, space.num_stages
        if idx.shape[1] != 1 + 2 * b + s:
            raise ConfigError(
                f"choice indices have {idx.shape[1]} columns; space {space.name!r} needs "
                f"1 + 2 * {b} + {s} = {1 + 2 * b + s}"
            )
        parts = (idx[:, :1], idx[:, 1 : 1 + b], idx[:, 1 + b : 1 + 2 * b], idx[:, 1 + 2 * b :])
        out = []
        for name, part, choices in zip(_FIELDS, parts, choice_arrays(space), strict=True):
            bad = (part < 0) | (part >= len(choices))
            if bad.any():
                row, col = np.argwhere(bad)[0]
                raise ConfigError(
                    f"choice index {int(part[row, col])} for {name} (row {row}, column {col}) is "
                    f"out of range; space {space.name!r} has {len(choices)} choices"
                )
            out.append(choices[part])
        return cls._trusted(out[0][:, 0], out[1], out[2], out[3])

    # --- sequence protocol ----------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.resolution.shape[0])

    def __iter__(self) -> Iterator[ArchConfig]:
        return iter(self.to_configs())

    def __getitem__(self, index: Any) -> Any:
        """``batch[i]`` → :class:`ArchConfig`; a slice, an index array or a boolean mask [N] →
        :class:`ConfigBatch`."""
        if isinstance(index, (int, np.integer)):
            i = int(index)
            if not -len(self) <= i < len(self):
                raise IndexError(f"config index {i} out of range for a batch of {len(self)}")
            return ArchConfig(
                resolution=int(self.resolution[i]),
                kernel_size=tuple(self.kernel_size[i].tolist()),
                expand_ratio=tuple(self.expand_ratio[i].tolist()),
                depth=tuple(self.depth[i].tolist()),
            )
        if not isinstance(index, slice):
            index = np.asarray(index)
            if index.size == 0:
                index = index.astype(np.int64)
            elif index.dtype == bool and index.shape != (len(self),):
                raise IndexError(f"boolean mask of shape {index.shape} for a batch of {len(self)}")
        return ConfigBatch._trusted(*(getattr(self, name)[index] for name in _FIELDS))

    def __repr__(self) -> str:
        return (
            f"ConfigBatch(n={len(self)}, block_slots={self.kernel_size.shape[1]}, "
            f"stages={self.depth.shape[1]})"
        )

    def equals(self, other: ConfigBatch) -> bool:
        """Same rows in the same order."""
        return all(np.array_equal(getattr(self, name), getattr(other, name)) for name in _FIELDS)

    # --- checks ---------------------------------------------------------------------------------
    def active_mask(self, space: SearchSpace) -> np.ndarray:
        """Which block slots are active: the first ``depth[s]`` slots of each stage ``s``.

        Shapes: ``[N, B]`` bool.
        """
        tables = _space_arrays(space)
        return tables.slot_position[None, :] < self.depth[:, tables.slot_stage]

    def validate(self, space: SearchSpace) -> ConfigBatch:
        """Check every value against ``space``; return ``self`` so calls chain.

        Raises:
            ConfigError: naming the first bad row, field, value and choices, e.g.
                ``config #3: kernel_size[5] = 4 is not allowed in space 'mbv3-tiny'; choose from
                (3, 5, 7)``, or a column count that does not fit the space.
        """
        for name, count, what in (
            ("kernel_size", space.num_blocks, "block slots"),
            ("expand_ratio", space.num_blocks, "block slots"),
            ("depth", space.num_stages, "elastic stages"),
        ):
            got = getattr(self, name).shape[1]
            if got != count:
                raise ConfigError(
                    f"ConfigBatch.{name} has {got} columns; space {space.name!r} has {count} "
                    f"{what} (one column each)"
                )
        tables = _space_arrays(space)
        lookups = zip(_FIELDS, tables.index, strict=True)
        if all(_lookup_index(getattr(self, n), lookup) is not None for n, lookup in lookups):
            return self
        fields = [
            (name, getattr(self, name).reshape(len(self), -1), choices)
            for name, choices in zip(_FIELDS, _choice_tuples(space), strict=True)
        ]
        bad = [~np.isin(values, choices) for _, values, choices in fields]
        bad_rows = np.zeros(len(self), dtype=bool)
        for b in bad:
            bad_rows |= b.any(axis=1)
        if not bad_rows.any():
            return self
        row = int(np.argmax(bad_rows))
        for (name, values, choices), b in zip(fields, bad, strict=True):
            if b[row].any():
                col = int(np.argmax(b[row]))
                where = name if name == "resolution" else f"{name}[{col}]"
                raise ConfigError(
                    f"config #{row}: {where} = {int(values[row, col])} is not allowed in space "
                    f"{space.name!r}; choose from {choices}"
                )
        raise AssertionError("unreachable")  # pragma: no cover


def _choice_tuples(space: SearchSpace) -> tuple[tuple[int, ...], ...]:
    return space.resolutions, space.kernel_sizes, space.expand_ratios, space.depths


@dataclass(frozen=True, eq=False)
class _SpaceArrays:
    """Per-space lookup arrays, built once per space (values are small non-negative ints)."""

    choices: tuple[np.ndarray, ...]  # per field: the choices, int64
    index: tuple[np.ndarray, ...]  # per field: value -> choice index, -1 where not a choice
    slot_position: np.ndarray  # [B] position of each block slot inside its stage
    slot_stage: np.ndarray  # [B] stage of each block slot


@functools.lru_cache(maxsize=64)
def _space_arrays(space: SearchSpace) -> _SpaceArrays:
    choices, index = [], []
    for values in _choice_tuples(space):
        arr = np.asarray(values, dtype=np.int64)
        lookup = np.full(max(int(arr.max()) + 1, 1), -1, dtype=np.int64)
        lookup[arr[arr >= 0]] = np.nonzero(arr >= 0)[0]
        for a in (arr, lookup):
            a.flags.writeable = False
        choices.append(arr)
        index.append(lookup)
    depths = space.stage_max_depths
    return _SpaceArrays(
        choices=tuple(choices),
        index=tuple(index),
        slot_position=np.concatenate([np.arange(d) for d in depths]),
        slot_stage=np.repeat(np.arange(len(depths)), depths),
    )


def choice_arrays(space: SearchSpace) -> tuple[np.ndarray, ...]:
    """The choices of ``resolution``, ``kernel_size``, ``expand_ratio`` and ``depth`` as read-only
    int64 arrays (cached per space)."""
    return _space_arrays(space).choices


def _lookup_index(values: np.ndarray, lookup: np.ndarray) -> np.ndarray | None:
    """Choice index of every value, or None when some value is not a choice."""
    if values.size == 0:
        return values.copy()
    if values.min() < 0 or values.max() >= len(lookup):
        return None
    idx = lookup[values]
    return None if idx.min() < 0 else idx


def choice_index(batch: ConfigBatch, space: SearchSpace) -> tuple[np.ndarray, ...]:
    """The choice index of every value (``resolution [N]``, ``kernel_size [N, B]``,
    ``expand_ratio [N, B]``, ``depth [N, S]``, all int64), after :meth:`ConfigBatch.validate`.

    Raises:
        ConfigError: when a row is not valid in ``space``.
    """
    tables = _space_arrays(space)
    out = []
    for name, lookup in zip(_FIELDS, tables.index, strict=True):
        idx = _lookup_index(getattr(batch, name), lookup)
        if idx is None:
            batch.validate(space)  # raises, naming row, field, value and choices
            raise AssertionError("unreachable")  # pragma: no cover
        out.append(idx)
    return tuple(out)
