"""Measured latency of the ``hat`` family's SubTransformers on this machine, and its dataset file.

Protocol (HAT Sec. 3.3 and its released latency-dataset script): batch 1, a fixed source of
``source_tokens`` tokens (HAT: 30 for WMT), the encoder run once, then greedy decoding of exactly
``target_tokens`` tokens with the key/value cache (end of sentence disabled, so every
SubTransformer decodes the same length; HAT decodes with beam search, we time greedy decoding —
the only decoder the library has). The time of one translation (encoder + decoder) is one
sample. Like the CNN latency table (:func:`supernet.cost.latency.measure_latencies`), the
SubTransformers are extracted and held ready (all of them, unless their weights exceed
:data:`MAX_GROUP_BYTES`: then in groups), and each round times one translation of every
SubTransformer in a fresh random order, so a machine whose speed drifts or bursts (a shared VM)
reaches them all alike; the first ``warmup`` rounds are dropped and the median of the rest is
kept. The minimum and, for one thread, the median *CPU time* of the measuring thread
(``time.thread_time``: the work done, without the time spent waiting for a core that other jobs
hold) are recorded too: on a shared, overloaded machine the wall-clock figures mostly measure
the queue (docs/results/hat.md), the CPU time much less so.

The dataset (:class:`TransformerLatencyDataset`) is JSON: the space's fields, the vocabulary
size, the measurement settings, the machine, and per config its median and interquartile range
in ms; written atomically.

Reference: HAT (Wang et al., ACL'20, arXiv 2005.14187), Sec. 3.3 (latency dataset of sampled
SubTransformers; "encoder once, decoder for a fixed output length").
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from supernet.checkpoint import write_text_atomic
from supernet.cost.device import describe_machine
from supernet.cost.transformer import transformer_params
from supernet.errors import ConfigError
from supernet.nn.transformer import SuperTransformer
from supernet.space.transformer import TransformerSpace
from supernet.space.transformer_config import FAMILY, TransformerConfig

__all__ = [
    "TransformerLatencyDataset",
    "build_transformer_latency_dataset",
    "measure_transformer_latencies",
    "sample_distinct_configs",
]

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
"""``progress(done, total, what)`` after each round of a group."""

DATASET_VERSION = 1
# Weights of the SubTransformers held extracted at once (hat-tiny's average is ~7 MB at vocab
# 3,000: 300 of them fit in one round-robin group).
MAX_GROUP_BYTES = 3 * 2**30
STATISTICS = {"median": "latency_ms", "min": "min_ms", "cpu": "cpu_ms"}
"""The measured figures a dataset holds per config (name → attribute)."""
_NO_EOS = -1  # an id argmax never returns: every translation decodes target_tokens tokens


def _check_settings(**settings: int) -> None:
    lowest = {"warmup": 0, "repeats": 1, "threads": 1, "source_tokens": 1, "target_tokens": 1}
    for name, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest[name]:
            raise ConfigError(f"{name} = {value!r} must be an integer >= {lowest[name]}")


@torch.inference_mode()
def measure_transformer_latencies(
    model: SuperTransformer,
    configs: Sequence[TransformerConfig],
    *,
    source_tokens: int = 30,
    target_tokens: int = 30,
    threads: int = 1,
    warmup: int = 2,
    repeats: int = 5,
    progress: ProgressFn | None = None,
) -> dict[str, np.ndarray]:
    """Latency of one translation by each SubTransformer ``config`` of ``model`` (extracted with
    :meth:`SuperTransformer.get_subnet`), measured round-robin (see the module docstring).

    Shapes: N configs → ``{"median_ms", "iqr_ms", "min_ms", "cpu_ms"}``, each ``[N]`` float64,
    in ms per translation (batch 1, encoder once + ``target_tokens`` greedy decoder steps):
    wall-clock median, interquartile range and minimum, and the median CPU time of the
    measuring thread (the translation's whole CPU time only when ``threads`` is 1).

    Raises:
        ConfigError: a config not valid in ``model.space``, ``source_tokens`` /
            ``target_tokens`` above the space's ``max_positions``, or a setting below its
            lowest value (named).

    Reference: HAT (arXiv 2005.14187), Sec. 3.3.
    """
    _check_settings(warmup=warmup, repeats=repeats, threads=threads,
                    source_tokens=source_tokens, target_tokens=target_tokens)  # fmt: skip
    limit = model.space.max_positions
    if max(source_tokens, target_tokens) > limit:
        raise ConfigError(
            f"source_tokens = {source_tokens} and target_tokens = {target_tokens} must be <= "
            f"{limit} (max_positions of space {model.space.name!r})"
        )
    configs = [model.space.validate(c) for c in configs]
    vocab = model.embed.num_embeddings
    gen = torch.Generator().manual_seed(0)
    src = torch.randint(min(4, vocab - 1), vocab, (1, source_tokens), generator=gen)
    n = len(configs)
    out = {key: np.zeros(n) for key in ("median_ms", "iqr_ms", "min_ms", "cpu_ms")}
    order_rng = np.random.default_rng(0)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    rounds = warmup + repeats
    try:
        for first, last in _groups(model, configs):
            group = configs[first:last]
            subnets = [model.get_subnet(c).eval() for c in group]
            times = np.zeros((rounds, len(group)))
            cpu = np.zeros((rounds, len(group)))
            for r in range(rounds):
                for i in order_rng.permutation(len(group)):
                    start, start_cpu = time.perf_counter(), time.thread_time()
                    subnets[i].greedy_decode(src, bos_id=0, eos_id=_NO_EOS, max_len=target_tokens)
                    cpu[r, i] = (time.thread_time() - start_cpu) * 1e3
                    times[r, i] = (time.perf_counter() - start) * 1e3
                if progress is not None:
                    what = f"configs {first + 1}-{last} of {n}"
                    progress(first * rounds + (r + 1) * len(group), n * rounds, what)
            q25, q50, q75 = np.percentile(times[warmup:], [25, 50, 75], axis=0)
            out["median_ms"][first:last], out["iqr_ms"][first:last] = q50, q75 - q25
            out["min_ms"][first:last] = times[warmup:].min(axis=0)
            out["cpu_ms"][first:last] = np.median(cpu[warmup:], axis=0)
            del subnets
    finally:
        torch.set_num_threads(previous)
    return out


def _groups(model: SuperTransformer, configs: list[TransformerConfig]) -> list[tuple[int, int]]:
    """``(first, last)`` index ranges whose extracted weights stay within MAX_GROUP_BYTES."""
    sizes = 4 * transformer_params(configs, model.space, vocab_size=model.embed.num_embeddings)
    groups, first, held = [], 0, 0
    for i, size in enumerate(sizes.tolist()):
        if i > first and held + size > MAX_GROUP_BYTES:
            groups.append((first, i))
            first, held = i, 0
        held += size
    return [*groups, (first, len(configs))] if configs else groups


def sample_distinct_configs(
    space: TransformerSpace, n: int, *, seed: int = 0
) -> list[TransformerConfig]:
    """The largest, the smallest, then random distinct SubTransformers of ``space`` (``n`` in
    all; a bounded number of draws, so a space with fewer distinct configs gives fewer).

    Raises:
        ConfigError: ``n`` < 2.
    """
    if n < 2:
        raise ConfigError(f"number of configs = {n} must be >= 2 (the largest and the smallest)")
    rng = np.random.default_rng(seed)
    configs = list(dict.fromkeys([space.largest(), space.smallest()]))
    seen = set(configs)
    for _ in range(50 * n):
        if len(configs) >= n:
            break
        c = space.sample(rng)
        if c not in seen:
            seen.add(c)
            configs.append(c)
    return configs


@dataclass
class TransformerLatencyDataset:
    """Measured (SubTransformer, latency) pairs of one space on one machine.

    Attributes:
        space: the space the configs belong to.
        vocab_size: vocabulary of the measured models (the output projection's size).
        configs: the measured SubTransformers.
        latency_ms: median ms per translation, ``[N]``.
        iqr_ms: interquartile range of the same, ``[N]``.
        min_ms: the fastest timed translation, ``[N]``.
        cpu_ms: median CPU time of the measuring thread, ``[N]`` (see the module docstring).
        settings: ``runtime``, ``threads``, ``warmup``, ``repeats``, ``source_tokens``,
            ``target_tokens``, ``decoding``.
        machine: :func:`~supernet.cost.device.describe_machine` at measurement time.
        seconds: wall time of the measurement.

    Raises:
        ConfigError: on construction, when the arrays and the configs differ in length.
    """

    space: TransformerSpace
    vocab_size: int
    configs: list[TransformerConfig]
    latency_ms: np.ndarray
    iqr_ms: np.ndarray
    min_ms: np.ndarray | None = None
    cpu_ms: np.ndarray | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.latency_ms = np.asarray(self.latency_ms, dtype=np.float64).reshape(-1)
        self.iqr_ms = np.asarray(self.iqr_ms, dtype=np.float64).reshape(-1)
        for name in ("min_ms", "cpu_ms"):
            value = self.latency_ms if getattr(self, name) is None else getattr(self, name)
            setattr(self, name, np.asarray(value, dtype=np.float64).reshape(-1))
        n = len(self.configs)
        sizes = {k: getattr(self, k).size for k in STATISTICS.values()}
        if set(sizes.values()) != {n}:
            raise ConfigError(f"{n} configs but arrays of sizes {sizes}")

    def latencies(self, statistic: str = "median") -> np.ndarray:
        """One of :data:`STATISTICS` (``median``, ``min``, ``cpu``), ``[N]`` ms.

        Raises:
            ConfigError: an unknown statistic (names the allowed ones).
        """
        if statistic not in STATISTICS:
            raise ConfigError(f"statistic {statistic!r} is not one of {sorted(STATISTICS)}")
        return getattr(self, STATISTICS[statistic])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the file format, version :data:`DATASET_VERSION`)."""
        return {
            "format": "supernet-transformer-latency",
            "version": DATASET_VERSION,
            "family": FAMILY,
            "space": self.space.name,
            "space_fields": dataclasses.asdict(self.space),
            "vocab_size": self.vocab_size,
            "settings": self.settings,
            "machine": self.machine,
            "seconds": round(self.seconds, 1),
            "rows": [
                {
                    "config": c.to_dict(),
                    "latency_ms": float(m),
                    "iqr_ms": float(q),
                    "min_ms": float(f),
                    "cpu_ms": float(u),
                }
                for c, m, q, f, u in zip(
                    self.configs,
                    self.latency_ms,
                    self.iqr_ms,
                    self.min_ms,
                    self.cpu_ms,
                    strict=True,
                )
            ],
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the dataset as JSON, atomically; returns the path. Raises: OSError."""
        path = Path(path)
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TransformerLatencyDataset:
        """Read a file written by :meth:`save`.

        Raises:
            ConfigError: the file is missing, not JSON, not a transformer latency dataset, of
                another version, or holds a config or value that does not fit its space (the
                message names the file and what is wrong).
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"latency dataset {path} does not exist") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"latency dataset {path} is not readable JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != "supernet-transformer-latency":
            raise ConfigError(f"{path} is not a transformer latency dataset (no matching format)")
        if data.get("version") != DATASET_VERSION:
            raise ConfigError(
                f"{path} has dataset version {data.get('version')!r}; this library reads "
                f"version {DATASET_VERSION}"
            )
        try:
            space = space_from_fields(data["space_fields"])
            rows = data["rows"]
            configs = [space.validate(TransformerConfig.from_dict(r["config"])) for r in rows]
            return cls(
                space=space,
                vocab_size=int(data["vocab_size"]),
                configs=configs,
                latency_ms=np.array([float(r["latency_ms"]) for r in rows]),
                iqr_ms=np.array([float(r["iqr_ms"]) for r in rows]),
                min_ms=np.array([float(r["min_ms"]) for r in rows]),
                cpu_ms=np.array([float(r["cpu_ms"]) for r in rows]),
                settings=dict(data.get("settings", {})),
                machine=dict(data.get("machine", {})),
                seconds=float(data.get("seconds", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"latency dataset {path} is malformed: {exc!r}") from None


def space_from_fields(fields: dict[str, Any]) -> TransformerSpace:
    """A :class:`TransformerSpace` from ``dataclasses.asdict`` output (lists become tuples).

    Raises:
        ConfigError: unknown or missing fields, or invalid choices.
    """
    try:
        return TransformerSpace(**{k: tuple(v) if isinstance(v, list) else v
                                   for k, v in fields.items()})  # fmt: skip
    except TypeError as exc:
        raise ConfigError(f"not the fields of a transformer space: {exc}") from None


def build_transformer_latency_dataset(
    space: TransformerSpace,
    *,
    vocab_size: int,
    num_configs: int = 200,
    seed: int = 0,
    source_tokens: int = 30,
    target_tokens: int = 30,
    threads: int = 1,
    warmup: int = 2,
    repeats: int = 5,
    progress: ProgressFn | None = None,
) -> TransformerLatencyDataset:
    """Measure ``num_configs`` SubTransformers of ``space`` (the largest, the smallest and
    distinct random ones drawn with ``seed``) with random weights (latency does not depend on
    the weights' values) and return the dataset.

    Raises:
        ConfigError: ``vocab_size`` < 5, ``num_configs`` < 2 or a bad measurement setting.

    Reference: HAT (arXiv 2005.14187), Sec. 3.3 (HAT measures 2,000 SubTransformers per device).
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 5:
        raise ConfigError(f"vocab_size = {vocab_size!r} must be an integer >= 5")
    _check_settings(warmup=warmup, repeats=repeats, threads=threads,
                    source_tokens=source_tokens, target_tokens=target_tokens)  # fmt: skip
    configs = sample_distinct_configs(space, num_configs, seed=seed)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SuperTransformer(space, vocab_size=vocab_size).eval()
    timed = measure_transformer_latencies(
        model, configs, source_tokens=source_tokens, target_tokens=target_tokens,
        threads=threads, warmup=warmup, repeats=repeats, progress=progress,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    logger.info("measured %d SubTransformers of %s in %.0f s", len(configs), space.name, seconds)
    settings = {
        "runtime": "torch", "threads": threads, "warmup": warmup, "repeats": repeats,
        "source_tokens": source_tokens, "target_tokens": target_tokens,
        "decoding": "greedy, key/value cache, batch 1", "seed": seed,
    }  # fmt: skip
    return TransformerLatencyDataset(
        space=space,
        vocab_size=vocab_size,
        configs=configs,
        latency_ms=timed["median_ms"],
        iqr_ms=timed["iqr_ms"],
        min_ms=timed["min_ms"],
        cpu_ms=timed["cpu_ms"],
        settings=settings,
        machine=describe_machine(),
        seconds=seconds,
    )
