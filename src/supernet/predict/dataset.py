"""The accuracy dataset: (subnet config, measured validation accuracy) pairs of a trained run.

Each subnet is extracted from the supernet, its BatchNorm statistics are re-calibrated on the run's
fixed subset of training images, and its top-1 accuracy is measured on the validation split. The
subnets are the largest, the smallest, then ``n`` distinct random ones drawn from
``np.random.default_rng(seed)``; the rows go to ``run_dir/acc_dataset.csv``, rewritten atomically
every few subnets, so an interrupted collection resumes where it stopped with the same configs.

Reference: Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Sec. 3.4: an accuracy predictor
is trained on [architecture, accuracy] pairs of subnets sampled from the trained supernet.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from supernet import __version__
from supernet.data import BatchLoader, resize
from supernet.errors import ConfigError, DataNotFoundError
from supernet.nn import OFAMobileNetV3, fold_batchnorm
from supernet.predict.halves import halves_path, halves_row, read_halves
from supernet.runtime import detect_runtime
from supernet.space import ArchConfig, SearchSpace, encode
from supernet.train import calibration_loader, load_run, recalibrate_bn
from supernet.train.derived import is_stale, record_derived
from supernet.train.distributed import (
    barrier,
    distributed_session,
    is_main_process,
    shard_map,
    world_size,
)
from supernet.train.rundir import write_csv_atomic

__all__ = [
    "ACC_DATASET",
    "ACC_DATASET_FORMAT_VERSION",
    "COLUMNS",
    "DEFAULT_SUBNETS",
    "AccuracyDataset",
    "ProgressFn",
    "collect_accuracy_dataset",
    "read_accuracy_dataset",
    "subnet_sequence",
]

log = logging.getLogger(__name__)

ACC_DATASET = "acc_dataset.csv"
ACC_DATASET_FORMAT_VERSION = 2
"""Layout of ``acc_dataset.csv``: 2 added the ``format_version`` and ``library_version`` columns
to the seven of layout 1, which is still read."""
COLUMNS = (
    "index", "config", "resolution", "val_accuracy", "images", "space", "seed",
    "format_version", "library_version",
)  # fmt: skip
_COLUMNS_V1 = COLUMNS[:7]
DEFAULT_SUBNETS = 200
"""Random subnets collected by default (plus the largest and the smallest). 202 subnets of
``mbv3-tiny`` on the 10,000 Fashion-MNIST validation images on 2 CPU cores took 1.41 s each on a
normal day (4.7 min) and 2.4-2.7 s on slow ones, before BN folding; with it, 3.07 s each
(10.3 min) on a day the machine ran ~3x slower than normal."""

ProgressFn = Callable[[int, int, str], None]
"""``progress(done, total, what)``: called once before the first subnet and after each one."""

_CACHE_BYTES = 1 << 30  # preprocessed (resized, normalized) batches kept per resolution


@dataclass(frozen=True)
class AccuracyDataset:
    """Measured subnets of one run.

    Shapes: ``configs`` N configs; ``val_accuracy`` float64 [N], top-1 accuracy in percent points
    on ``images`` validation images each; ``features()`` float32 [N, F] (Once-for-All encoding).
    The first two configs are the space's largest and smallest; the rest are ``subnet_sequence``'s
    random configs for ``seed``. ``measured`` subnets were measured by the call that returned it,
    in ``seconds`` (wall clock); the others were read back from the csv. ``half_accuracy``
    float64 [N, 2]: accuracy on the even- and odd-indexed validation images (``acc_halves.csv``;
    NaN for subnets collected without it), for the split-half noise ceiling.
    """

    space: SearchSpace
    seed: int
    configs: tuple[ArchConfig, ...]
    val_accuracy: np.ndarray
    images: int
    path: Path | None = None
    measured: int = 0
    seconds: float = 0.0
    half_accuracy: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.configs)

    def features(self) -> np.ndarray:
        """The configs' Once-for-All encoding, float32 [N, F] (:func:`supernet.space.encode`)."""
        return encode(list(self.configs), self.space)

    def rows(self) -> list[dict[str, object]]:
        """The ``acc_dataset.csv`` rows (columns :data:`COLUMNS`)."""
        return [
            _row(i, c, float(a), self.images, self.space.name, self.seed)
            for i, (c, a) in enumerate(zip(self.configs, self.val_accuracy, strict=True))
        ]


def _row(index: int, config: ArchConfig, acc: float, images: int, space: str, seed: int) -> dict:
    return {
        "index": index,
        "config": config.to_json(),
        "resolution": config.resolution,
        "val_accuracy": round(acc, 6),
        "images": images,
        "space": space,
        "seed": seed,
        "format_version": ACC_DATASET_FORMAT_VERSION,
        "library_version": __version__,
    }


def subnet_sequence(space: SearchSpace, n: int, seed: int) -> list[ArchConfig]:
    """The largest, the smallest, then ``n`` distinct random configs of ``space``.

    Configs are drawn one by one with ``space.sample(np.random.default_rng(seed))`` and kept when
    their encoding (the subnet they select: blocks beyond a stage's depth do not count) is new, so
    the sequence for ``n`` is a prefix of the sequence for any larger ``n``.

    Raises:
        ConfigError: ``n`` is negative, or the space has too few distinct subnets (at most
            ``100 * (n + 1)`` draws are tried).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"n = {n!r} must be an integer >= 0")
    configs = [space.largest(), space.smallest()]
    seen = {encode([c], space).tobytes() for c in configs}
    rng = np.random.default_rng(seed)
    for _ in range(100 * (n + 1)):
        if len(configs) == n + 2:
            return configs
        config = space.sample(rng)
        key = encode([config], space).tobytes()
        if key not in seen:
            seen.add(key)
            configs.append(config)
    raise ConfigError(
        f"space {space.name!r} gave only {len(configs) - 2} distinct random subnets in "
        f"{100 * (n + 1)} draws; ask for fewer than n = {n}"
    )


def read_accuracy_dataset(path: str | Path, space: SearchSpace) -> AccuracyDataset:
    """Read an ``acc_dataset.csv`` written by :func:`collect_accuracy_dataset`.

    Every row is checked: the format version (:data:`ACC_DATASET_FORMAT_VERSION`, or layout 1
    without the version columns), the space, one seed and image count, a config valid in
    ``space`` whose resolution matches its column, an accuracy in [0, 100] and indices 0..N-1 in
    order. Rows written by another library version are read with a logged warning.

    Raises:
        DataNotFoundError: the file does not exist (run ``supernet predict collect`` first).
        ConfigError: the file is not a UTF-8 accuracy dataset, has another format version, is
            of another space than ``space``, mixes seeds or validation sizes, or holds a
            malformed row (names the file, the row, the column, the value and what is allowed).
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(
            f"no accuracy dataset at {path}; collect one with `supernet predict collect`"
        )
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = tuple(reader.fieldnames or ())
            if columns not in (COLUMNS, _COLUMNS_V1):
                raise ConfigError(
                    f"{path} is not an accuracy dataset: columns {list(columns)}, "
                    f"expected {list(COLUMNS)}"
                )
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path} is not an accuracy dataset: {exc}") from exc
    if not rows:
        raise ConfigError(f"{path} holds no subnets")
    for i, r in enumerate(rows):
        if None in r or None in r.values():  # csv's marks of missing or extra fields
            raise ConfigError(f"{path} row {i} does not have {len(columns)} fields")
    if columns == COLUMNS:
        _check_versions(path, rows)
    spaces, seeds, images = ({r[k] for r in rows} for k in ("space", "seed", "images"))
    if spaces != {space.name}:
        raise ConfigError(
            f"{path} was collected in space {sorted(spaces)[0]!r}; this run's space is "
            f"{space.name!r}"
        )
    if len(seeds) != 1 or len(images) != 1:
        raise ConfigError(f"{path} mixes seeds {sorted(seeds)} or image counts {sorted(images)}")
    seed = _int_column(path, "seed", seeds.pop(), 0)
    n_images = _int_column(path, "images", images.pop(), 1)
    configs, acc = [], np.zeros(len(rows))
    for i, r in enumerate(rows):
        where = f"{path} row {i}"
        if _int_column(path, "index", r["index"], 0) != i:
            raise ConfigError(f"{where}: the index column is not 0..{len(rows) - 1} in order")
        try:
            config = ArchConfig.from_json(r["config"]).validate(space)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        if r["resolution"] != str(config.resolution):
            raise ConfigError(
                f"{where}: resolution = {r['resolution']!r}, its config's is {config.resolution}"
            )
        acc[i] = _float_column(where, "val_accuracy", r["val_accuracy"], 0.0, 100.0)
        configs.append(config)
    return AccuracyDataset(space, seed, tuple(configs), acc, n_images, path,
                           half_accuracy=read_halves(path, len(configs)))  # fmt: skip


def _check_versions(path: Path, rows: list[dict[str, str]]) -> None:
    versions = {r["format_version"] for r in rows}
    if versions != {str(ACC_DATASET_FORMAT_VERSION)}:
        raise ConfigError(
            f"{path} has format_version {sorted(versions)}; this supernet reads "
            f"{ACC_DATASET_FORMAT_VERSION} (or the 7-column layout 1)"
        )
    libraries = {r["library_version"] for r in rows} - {__version__}
    if libraries:
        log.warning("%s was written by supernet %s, this is supernet %s; reading it (same "
                    "format version)", path, sorted(libraries), __version__)  # fmt: skip


def _int_column(path: Path, column: str, text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise ConfigError(f"{path}: {column} = {text!r} must be an integer >= {low}")
    return value


def _float_column(where: str, column: str, text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # also refuses nan
        raise ConfigError(f"{where}: {column} = {text!r} must be a number in [{low}, {high}]")
    return value


class _SubnetScorer:
    """BN re-calibration and validation accuracy with preprocessed batches reused across subnets.

    The calibration subset and validation split are normalized once; resized copies (on the
    device, in the run's memory format) are cached per resolution up to ``_CACHE_BYTES``. After
    re-calibration the subnet's BN is folded into its convolutions
    (:func:`~supernet.nn.fold_batchnorm`: ~30% less evaluation time on 2 CPU cores), so its
    accuracy equals :func:`supernet.train.evaluate_subnet`'s with the same loaders up to float
    rounding (an image whose top two logits nearly tie can flip).
    """

    def __init__(
        self,
        supernet: OFAMobileNetV3,
        calib: BatchLoader,
        val: BatchLoader,
        device: torch.device,
        channels_last: bool,
    ) -> None:
        self.supernet, self.device = supernet, device
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.calib = [x for x, _ in calib]
        self.val = list(val)
        self.images = sum(int(y.numel()) for _, y in self.val)
        self.cache: dict[int, tuple[list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]]
        self.cache = {}
        self.cached_bytes = 0

    def _prep(self, x: torch.Tensor, resolution: int) -> torch.Tensor:
        return resize(x, resolution).to(self.device, memory_format=self.fmt)

    def _batches(
        self, resolution: int
    ) -> tuple[Iterator[torch.Tensor], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
        if resolution in self.cache:
            calib, val = self.cache[resolution]
            return iter(calib), iter(val)
        per_image = self.calib[0].shape[1] * resolution**2  # float32 values
        size = 4 * per_image * (sum(x.shape[0] for x in self.calib) + self.images)
        if self.cached_bytes + size > _CACHE_BYTES:  # too big to keep: resize batch by batch
            return (
                (self._prep(x, resolution) for x in self.calib),
                ((self._prep(x, resolution), y.to(self.device)) for x, y in self.val),
            )
        calib = [self._prep(x, resolution) for x in self.calib]
        val = [(self._prep(x, resolution), y.to(self.device)) for x, y in self.val]
        self.cache[resolution] = (calib, val)
        self.cached_bytes += size
        return iter(calib), iter(val)

    def __call__(self, config: ArchConfig) -> tuple[float, float, float]:
        """Top-1 validation accuracy (%) of ``config`` after BN re-calibration: on all images,
        on the even-indexed and on the odd-indexed ones."""
        calib, val = self._batches(config.resolution)
        subnet = self.supernet.get_subnet(config).to(self.device, memory_format=self.fmt)
        recalibrate_bn(subnet, calib)
        fold_batchnorm(subnet)
        correct, offset = [0, 0], 0
        with torch.inference_mode():
            for x, y in val:
                hits = subnet(x).argmax(1) == y
                first = offset % 2  # parity of this batch's first image index
                correct[first] += int(hits[0::2].sum())
                correct[1 - first] += int(hits[1::2].sum())
                offset += int(y.numel())
        n_even, n_odd = (self.images + 1) // 2, self.images // 2
        return (100.0 * sum(correct) / max(self.images, 1), 100.0 * correct[0] / max(n_even, 1),
                100.0 * correct[1] / max(n_odd, 1))  # fmt: skip


def _resume_rows(
    path: Path,
    space: SearchSpace,
    seed: int,
    images: int,
    expected: Sequence[ArchConfig],
    extra: int = 0,
) -> list[dict]:
    """Rows of an existing csv that match this collection, checked row by row; up to ``extra``
    rows beyond ``expected`` (an active collection's picks) are kept unchecked."""
    if not path.exists():
        return []
    done = read_accuracy_dataset(path, space)
    if done.seed != seed:
        raise ConfigError(
            f"{path} was collected with seed {done.seed}, this call uses seed {seed}; "
            "pass the same seed, or force a new collection"
        )
    if done.images != images:
        raise ConfigError(
            f"{path} was measured on {done.images} validation images, this call uses {images}; "
            "pass the same val_images, or force a new collection"
        )
    for i, config in enumerate(done.configs[: len(expected)]):
        if config != expected[i]:
            raise ConfigError(
                f"{path} row {i} holds {config.to_json()}, but seed {seed} gives "
                f"{expected[i].to_json()} there; force a new collection"
            )
    return done.rows()[: len(expected) + extra]


def collect_accuracy_dataset(
    run_dir: str | Path,
    *,
    n: int = DEFAULT_SUBNETS,
    seed: int = 0,
    val_images: int | None = None,
    device: str = "auto",
    save_every: int = 10,
    force: bool = False,
    progress: ProgressFn | None = None,
    active_round: int | None = None,
) -> AccuracyDataset:
    """Measure the validation accuracy of ``n + 2`` subnets of a trained run; resumable.

    With ``active_round`` (active learning, :mod:`supernet.predict.active`) only the first
    ``n // 2`` (at least 2) random subnets come from :func:`subnet_sequence`; the rest are
    picked in rounds of ``active_round``: an ensemble of predictors fit on the rows so far
    scores a pool of random unmeasured subnets and the ones it disagrees on most are measured
    next.

    The subnets are :func:`subnet_sequence` ``(space, n, seed)``. Each is extracted, BN
    re-calibrated on the run's ``bn_calib_images`` fixed training images and evaluated on the first
    ``val_images`` images of the validation split (all of them by default) at the run's
    ``eval_batch_size``. Rows go to ``run_dir/acc_dataset.csv`` every ``save_every`` subnets and at
    the end (also when interrupted). A csv already there is continued: its rows are kept and only
    the missing subnets are measured (with a larger ``n`` the collection is extended; with a
    smaller one the first ``n + 2`` rows are returned). ``force`` discards it. Under ``torchrun``
    the subnets are split across the ranks (:func:`supernet.train.distributed.shard_map`) and rank
    0 writes the same csv one process would.

    Returns the dataset: accuracies in percent points.

    Raises:
        ConfigError: ``n``, ``val_images`` or ``save_every`` out of range; or the existing csv is of
            another space, seed or validation size (names both values).
        RunDirError / CheckpointError / DataNotFoundError: from :func:`supernet.train.load_run`.

    Reference: Once-for-All (arXiv 1908.09791), Sec. 3.4.
    """
    for name, value, low in (
        ("n", n, 0),
        ("seed", seed, 0),
        ("save_every", save_every, 1),
        ("val_images", val_images, 1),
        ("active_round", active_round, 1),
    ):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < low):  # fmt: skip
            raise ConfigError(f"{name} = {value!r} must be an integer >= {low}")
    with distributed_session(detect_runtime(device, amp=False)):
        if active_round is not None and world_size() > 1:
            raise ConfigError("active_round: active collection runs in one process, not torchrun")
        return _collect(run_dir, n, seed, val_images, device, save_every, force, progress,
                        active_round)  # fmt: skip


def _collect(
    run_dir: str | Path,
    n: int,
    seed: int,
    val_images: int | None,
    device: str,
    save_every: int,
    force: bool,
    progress: ProgressFn | None,
    active_round: int | None = None,
) -> AccuracyDataset:
    run = load_run(run_dir, device=device)
    if not run.finished:
        log.warning("collecting accuracies of a %s", run.progress)
    config, space, splits = run.config, run.space, run.splits
    total = n + 2
    initial = n if active_round is None else max(n // 2, min(n, 2))  # an ensemble needs >= 3
    configs = subnet_sequence(space, initial, seed)
    val = BatchLoader(splits.val, config.eval_batch_size, shuffle=False, augment=False,
                      limit=val_images or config.image_limit)  # fmt: skip
    path = run.run_dir / ACC_DATASET
    stale = is_stale(run.run_dir, ACC_DATASET, run.checkpoint_digest)
    if stale and not force:
        log.warning("%s was measured on an earlier checkpoint of this run; measuring again", path)
    if (force or stale) and is_main_process():
        path.unlink(missing_ok=True)
        halves_path(path).unlink(missing_ok=True)
    if is_main_process():
        record_derived(run.run_dir, ACC_DATASET, run.checkpoint_digest)
    barrier()
    rows = _resume_rows(path, space, seed, val.num_samples, configs, total - len(configs))
    configs += [ArchConfig.from_json(str(r["config"])) for r in rows[len(configs) :]]
    resumed, collect_start = len(rows), time.perf_counter()
    known = read_halves(path, len(rows)) if rows else np.zeros((0, 2))
    halves = [halves_row(i, *known[i]) for i in range(len(rows)) if not np.isnan(known[i]).any()]
    if len(rows) < total:
        calib = calibration_loader(splits.train, config.calib_images, config.eval_batch_size, 0)
        score = _SubnetScorer(run.supernet, calib, val, run.device, config.channels_last)
        if progress is not None:
            progress(len(rows), total, f"{len(rows)} subnets in {path.name}")
        written, world = len(rows), world_size()
        try:  # under torchrun each rank measures one subnet of every chunk of `world`
            for i in range(len(rows), total, world):
                start = time.perf_counter()
                if i >= len(configs):  # an active round: pick the next subnets
                    configs += _active_picks(
                        configs, rows, space, min(active_round or 1, total - i), seed + i
                    )
                chunk = configs[i : i + world]
                for k, (acc, even, odd) in enumerate(shard_map(score, chunk)):
                    rows.append(_row(i + k, chunk[k], acc, score.images, space.name, seed))
                    halves.append(halves_row(i + k, even, odd))
                if len(rows) - written >= save_every and is_main_process():
                    _write(path, rows, halves)
                    written = len(rows)
                seconds = time.perf_counter() - start
                log.info("subnets %d-%d: %s in %.2f s", i, i + len(chunk) - 1,
                         [float(r["val_accuracy"]) for r in rows[i:]], seconds)  # fmt: skip
                if progress is not None:
                    last = float(rows[-1]["val_accuracy"])
                    progress(len(rows), total, f"{last:.2f}% ({seconds:.1f} s)")
        finally:
            if len(rows) > written and is_main_process():
                _write(path, rows, halves)
    acc = np.array([float(r["val_accuracy"]) for r in rows], dtype=np.float64)
    half_accuracy = np.full((len(rows), 2), np.nan)
    for h in halves:
        half_accuracy[int(h["index"])] = (h["val_accuracy_even"], h["val_accuracy_odd"])
    configs = configs[: len(rows)]
    return AccuracyDataset(space, seed, tuple(configs), acc, int(rows[0]["images"]), path,
                           measured=len(rows) - resumed,
                           seconds=time.perf_counter() - collect_start,
                           half_accuracy=half_accuracy)  # fmt: skip


def _write(path: Path, rows: list[dict], halves: list[dict]) -> None:
    """The halves first: a crash between the two writes leaves extra halves, never missing."""
    if halves:
        write_csv_atomic(halves_path(path), halves)
    write_csv_atomic(path, rows)


def _active_picks(
    configs: list[ArchConfig], rows: list[dict], space: SearchSpace, k: int, seed: int
) -> list[ArchConfig]:
    """The next ``k`` subnets of an active collection (imported here: it trains predictors)."""
    from supernet.predict.active import propose_subnets

    acc = np.array([float(r["val_accuracy"]) for r in rows])
    picks = propose_subnets(configs[: len(rows)], acc, space, k, seed=seed)
    log.info("active round: %d subnets picked by ensemble disagreement", len(picks))
    return picks
