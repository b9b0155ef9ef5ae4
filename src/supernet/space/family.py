"""The family protocol: what a network family's search space provides to search and predict.

A *family* is one kind of network (MobileNetV3-like CNNs: :class:`~supernet.space.SearchSpace`;
HAT Transformers: :class:`~supernet.space.transformer.TransformerSpace`; a toy MLP family in
``tests/search/test_toy_family.py``). ``supernet.search`` (evolution, NSGA-II, random search) and
``supernet.predict.accuracy`` (the MLP accuracy predictor, its RMSE and Kendall τ) use a space
only through :class:`Space`, so adding a family is adding files, never an ``if family == ...``.

A family provides three things:

- **configs** (:class:`FamilyConfig`): immutable, hashable values (equal configs hash equal:
  search and the predictor's split put them in sets) with ``to_json()`` for run files;
- **batches** (:class:`ConfigRows`): what search moves around and what every objective receives.
  A batch is a sequence of N configs that numpy-style indexing (an int gives a config; a slice,
  an int array or a bool mask [N] gives a batch) keeps a batch. The CNN family's batch is the
  vectorized :class:`~supernet.space.ConfigBatch`; any other family may use :class:`ConfigList`;
- **a space** (:class:`Space`): per-config operators (``sample``, ``mutate``, ``crossover``,
  ``largest``, ``smallest``, ``validate``, ``describe``, ``size``), their batched forms that search
  calls (``batch``, ``concat``, ``sample_batch``, ``mutate_batch``, ``crossover_batch``), an
  integer gene coding for NSGA-II (``choice_counts``, ``to_choice_indices``,
  ``from_choice_indices``) and the predictor's input (``encode`` → ``[N, F]`` float32,
  ``encoding_version``, ``summary_map``).

Objectives (scores, costs, constraints) are batched callables ``batch -> np.ndarray [N]`` written
by the caller for the family's batch type; search never looks inside a config.

:class:`PerConfigBatching` derives the batched operators from the per-config ones (a loop, one
config at a time, drawing from the same ``rng``), and :class:`GeneCoding` the gene coding from a
list of genes, so a new family writes only its per-config methods. The CNN family keeps its own
vectorized operators (:mod:`supernet.space.operators`), whose random streams search results
depend on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from supernet.errors import ConfigError

__all__ = ["ConfigList", "ConfigRows", "FamilyConfig", "GeneCoding", "PerConfigBatching", "Space"]


@runtime_checkable
class FamilyConfig(Protocol):
    """One subnet of a family: immutable and hashable (equal configs hash equal)."""

    def to_json(self) -> str:
        """The config as a JSON object (a run file records it; the family reads it back)."""
        ...

    def __hash__(self) -> int: ...


@runtime_checkable
class ConfigRows(Protocol):
    """A family's batch of N configs (:class:`~supernet.space.ConfigBatch`, :class:`ConfigList`).

    ``batch[i]`` is a config; ``batch[slice]``, ``batch[int array]`` and ``batch[bool mask [N]]``
    are batches of the selected rows, in order.
    """

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __getitem__(self, index: Any) -> Any: ...


@runtime_checkable
class Space(Protocol):
    """What a family's search space provides (see the module docstring).

    Per-config methods take and return the family's configs; batched ones its batches. Every
    random draw comes from the ``rng`` passed in (a ``np.random.Generator``), so a seed fixes a
    search. Methods that receive a config of another family or space raise
    :class:`~supernet.errors.ConfigError` naming both.
    """

    @property
    def name(self) -> str:
        """The space's name, e.g. ``"mbv3-tiny"`` or ``"hat-tiny"`` (in messages and files)."""
        ...

    @property
    def family(self) -> str:
        """The family's name, e.g. ``"ofa-mbv3"`` or ``"hat"``."""
        ...

    # --- configs --------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Any:
        """A uniformly random config."""
        ...

    def mutate(self, config: Any, rng: np.random.Generator, *, prob: float) -> Any:
        """``config`` with each choice redrawn with probability ``prob`` (a family may take
        more keyword options, with defaults)."""
        ...

    def crossover(self, a: Any, b: Any, rng: np.random.Generator) -> Any:
        """A child taking each choice from ``a`` or ``b`` with equal probability."""
        ...

    def largest(self) -> Any:
        """Every dimension at its largest choice (the whole supernet)."""
        ...

    def smallest(self) -> Any:
        """Every dimension at its smallest choice."""
        ...

    def size(self) -> int:
        """Number of distinct subnets."""
        ...

    def validate(self, config: Any) -> Any:
        """Return ``config`` when it is a subnet of this space. Raises: ConfigError otherwise."""
        ...

    def describe(self, config: Any) -> str:
        """Short one-line text of ``config`` for tables and messages."""
        ...

    # --- batches (what search calls) ------------------------------------------------------------
    def batch(self, configs: Sequence[Any]) -> ConfigRows:
        """The family's batch of ``configs`` (validated). Shapes: N configs → N rows."""
        ...

    def concat(self, batches: Sequence[ConfigRows]) -> ConfigRows:
        """Rows of all ``batches`` in order. Raises: ConfigError when ``batches`` is empty."""
        ...

    def sample_batch(self, n: int, rng: np.random.Generator) -> ConfigRows:
        """``n`` configs from :meth:`sample`'s distribution. Shapes: → N rows."""
        ...

    def mutate_batch(
        self, batch: ConfigRows, rng: np.random.Generator, *, prob: float, resolution_prob: float
    ) -> ConfigRows:
        """Every row mutated as by :meth:`mutate` with ``prob``. ``resolution_prob`` is the chance
        to redraw the input resolution; a family without an elastic resolution ignores it.
        Shapes: N rows → N rows."""
        ...

    def crossover_batch(self, a: ConfigRows, b: ConfigRows, rng: np.random.Generator) -> ConfigRows:
        """Row ``i`` is :meth:`crossover` of ``a[i]`` and ``b[i]``. Shapes: N, N rows → N rows."""
        ...

    # --- integer gene coding (NSGA-II) ----------------------------------------------------------
    def choice_counts(self) -> np.ndarray:
        """Number of choices of each gene. Shapes: ``[G]`` int64, every entry >= 1."""
        ...

    def to_choice_indices(self, batch: ConfigRows) -> np.ndarray:
        """Each gene as the index of its choice. Shapes: N rows → ``[N, G]`` int64."""
        ...

    def from_choice_indices(self, indices: np.ndarray) -> ConfigRows:
        """Inverse of :meth:`to_choice_indices`. Shapes: ``[N, G]`` → N rows.
        Raises: ConfigError on a wrong number of columns or an index out of range."""
        ...

    # --- predictor input ------------------------------------------------------------------------
    @property
    def encoding_version(self) -> int:
        """Version of :meth:`encode`'s layout (saved predictors record it)."""
        ...

    def encode(self, configs: Sequence[Any] | ConfigRows) -> np.ndarray:
        """Predictor features. Shapes: N configs (a sequence or a batch) → ``[N, F]`` float32,
        ``F`` fixed by the space. Raises: ConfigError for a config not of this space."""
        ...

    def summary_map(self) -> tuple[np.ndarray, np.ndarray]:
        """A fixed linear map ``s(x) = x @ matrix + offset`` from :meth:`encode`'s features to
        summary features the accuracy predictor also sees. Shapes: ``matrix [F, S]``,
        ``offset [S]`` float32; ``S = 0`` for a family without any."""
        ...


class ConfigList(Sequence):
    """A batch of any family's configs: an immutable list with numpy-style row indexing.

    Shapes: N configs. ``batch[i]`` → config; a slice, an int array or a bool mask [N] →
    :class:`ConfigList`.

    Raises:
        IndexError: for an int out of range or a mask of the wrong shape.
    """

    __slots__ = ("_rows",)

    def __init__(self, configs: Sequence[Any] = ()) -> None:
        self._rows = tuple(configs)

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (int, np.integer)):
            return self._rows[int(index)]
        if isinstance(index, slice):
            return ConfigList(self._rows[index])
        index = np.asarray(index)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise IndexError(f"boolean mask of shape {index.shape} for a batch of {len(self)}")
            index = np.flatnonzero(index)
        return ConfigList([self._rows[int(i)] for i in index.reshape(-1)])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfigList) and self._rows == other._rows

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ConfigList(n={len(self)})"

    @staticmethod
    def concat(batches: Sequence[ConfigList]) -> ConfigList:
        """Rows of all ``batches`` in order. Raises: ConfigError when ``batches`` is empty."""
        if not batches:
            raise ConfigError("ConfigList.concat needs at least one batch")
        return ConfigList([c for b in batches for c in b])


class PerConfigBatching:
    """Mixin: :class:`Space`'s batched methods from the per-config ones, batches as
    :class:`ConfigList`.

    Each batched call loops over rows in order, calling :meth:`sample`, :meth:`mutate` (with
    ``prob`` only; ``resolution_prob`` is ignored) or :meth:`crossover` with the same ``rng``.
    """

    def batch(self, configs: Sequence[Any]) -> ConfigList:
        """:meth:`Space.batch`: the configs, each validated. Raises: ConfigError."""
        return ConfigList([self.validate(c) for c in configs])  # type: ignore[attr-defined]

    def concat(self, batches: Sequence[ConfigList]) -> ConfigList:
        """:meth:`Space.concat`. Raises: ConfigError when ``batches`` is empty."""
        return ConfigList.concat(batches)

    def sample_batch(self, n: int, rng: np.random.Generator) -> ConfigList:
        """:meth:`Space.sample_batch`: ``n`` calls of ``sample``. Raises: ConfigError for n < 0."""
        if n < 0:
            raise ConfigError(f"number of configs n = {n} must be >= 0")
        return ConfigList([self.sample(rng) for _ in range(n)])  # type: ignore[attr-defined]

    def mutate_batch(
        self, batch: ConfigList, rng: np.random.Generator, *, prob: float, resolution_prob: float
    ) -> ConfigList:
        """:meth:`Space.mutate_batch`: ``mutate(row, rng, prob=prob)`` per row, in order."""
        return ConfigList([self.mutate(c, rng, prob=prob) for c in batch])  # type: ignore[attr-defined]

    def crossover_batch(self, a: ConfigList, b: ConfigList, rng: np.random.Generator) -> ConfigList:
        """:meth:`Space.crossover_batch`. Raises: ConfigError when the lengths differ."""
        if len(a) != len(b):
            raise ConfigError(f"crossover of batches of {len(a)} and {len(b)} configs")
        cross = self.crossover  # type: ignore[attr-defined]
        return ConfigList([cross(x, y, rng) for x, y in zip(a, b, strict=True)])


class GeneCoding:
    """Mixin: :class:`Space`'s integer gene coding from three methods of the family:
    ``genes() -> list of choice tuples`` (one per gene, in a fixed order), ``to_genes(config) ->
    list of values`` and ``from_genes(values) -> config``."""

    def _gene_choices(self) -> list[tuple[Any, ...]]:
        return [tuple(c) for c in self.genes()]  # type: ignore[attr-defined]

    def choice_counts(self) -> np.ndarray:
        """:meth:`Space.choice_counts`: ``[G]`` int64, one per gene of ``genes()``."""
        return np.array([len(c) for c in self._gene_choices()], dtype=np.int64)

    def to_choice_indices(self, batch: Sequence[Any]) -> np.ndarray:
        """:meth:`Space.to_choice_indices`: ``[N, G]`` int64.

        Raises:
            ConfigError: a gene value that is not one of its choices (names the row).
        """
        lookup = [{v: i for i, v in enumerate(gene)} for gene in self._gene_choices()]
        rows = []
        for row, config in enumerate(batch):
            values = self.to_genes(config)  # type: ignore[attr-defined]
            try:
                rows.append([index[v] for index, v in zip(lookup, values, strict=True)])
            except (KeyError, ValueError):
                raise ConfigError(
                    f"config #{row} ({config!r}) is not a subnet of space {self.name!r}"  # type: ignore[attr-defined]
                ) from None
        return np.array(rows, dtype=np.int64).reshape(len(rows), len(lookup))

    def from_choice_indices(self, indices: np.ndarray) -> ConfigList:
        """:meth:`Space.from_choice_indices`: ``[N, G]`` (whole numbers) → N rows.

        Raises:
            ConfigError: a wrong shape or an index out of range (names row and gene).
        """
        idx = np.asarray(indices)
        choices = self._gene_choices()
        if idx.ndim != 2 or idx.shape[1] != len(choices):
            raise ConfigError(
                f"choice indices of shape {idx.shape}; space {self.name!r} needs "  # type: ignore[attr-defined]
                f"[N, {len(choices)}]"
            )
        idx = np.rint(idx).astype(np.int64)
        counts = self.choice_counts()
        bad = (idx < 0) | (idx >= counts[None, :])
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise ConfigError(
                f"choice index {int(idx[row, col])} for gene {col} (row {row}) is out of range; "
                f"it has {int(counts[col])} choices"
            )
        return ConfigList(
            [self.from_genes([g[i] for g, i in zip(choices, r, strict=True)]) for r in idx.tolist()]  # type: ignore[attr-defined]
        )
