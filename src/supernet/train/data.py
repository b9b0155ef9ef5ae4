"""The dataset of a training run: built-in by name, or an image folder (``folder:PATH``) whose
statistics are computed once and saved with the run.

For a folder the images are decoded at ``image_size`` (default: the space's largest resolution)
with the ImageNet recipe (:func:`supernet.data.read_image`, ``recipe="imagenet"``; with
``augment: true`` training draws random resized crops and flips), split by ``seed`` (or by
``train/ val/ test/`` sub-trees), and the classes, channel count, per-channel mean/std and
skipped files are written to ``RUN/dataset.json`` on the first load. Later loads (``resume``,
``eval``, ``predict``, ``specialize``, ``transfer``) reuse the saved mean/std and refuse a
folder whose classes changed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from supernet.checkpoint import write_text_atomic
from supernet.data import FOLDER_PREFIX, DatasetSplits, load_dataset
from supernet.errors import ConfigError
from supernet.space import get_space
from supernet.train.config import TrainConfig
from supernet.train.rundir import DATASET_RECORD

__all__ = ["DATASET_RECORD", "load_run_dataset", "write_dataset_record"]

log = logging.getLogger(__name__)

_FORMAT_VERSION = 1


def load_run_dataset(
    config: TrainConfig,
    run_dir: str | Path | None = None,
    *,
    save: bool = False,
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> DatasetSplits:
    """The splits of ``config.dataset``; for a folder, with the run's saved statistics.

    With ``save`` (training, rank 0) a folder's record is written to ``RUN/dataset.json`` when
    it is not there yet, with ``stats=(mean, std)`` when given (imported weights keep the
    statistics they were trained with) or else those of the train split. Unreadable images are
    skipped (see :func:`supernet.data.load_image_folder`) and their count logged.

    Shapes: folder images uint8 ``[N, C, R, R]`` with R = ``config.image_size``, by default the
    space's largest resolution.

    Raises:
        DataNotFoundError: the dataset's files or folder are missing.
        ConfigError: a bad folder (see :func:`supernet.data.load_image_folder`), or one whose
            classes differ from the run's ``dataset.json`` (both lists named).
    """
    if not config.dataset.startswith(FOLDER_PREFIX):
        return load_dataset(config.dataset)
    record_path = None if run_dir is None else Path(run_dir) / DATASET_RECORD
    record = None
    if record_path is not None and record_path.is_file():
        record = json.loads(record_path.read_text())
    size = config.image_size or max(get_space(config.space).resolutions)
    if record is not None:
        stats = (tuple(record["mean"]), tuple(record["std"]))
    splits = load_dataset(config.dataset, size=size, seed=config.seed, recipe="imagenet",
                          augment=config.augment, stats=stats)  # fmt: skip
    classes = list(_class_names(config.dataset))
    if record is not None and record["classes"] != classes:
        raise ConfigError(
            f"{record_path}: the run was trained on classes {record['classes']} but "
            f"{config.dataset!r} now holds {classes}"
        )
    if splits.skipped:
        log.warning("%d unreadable image(s) skipped in %s (listed in %s)", len(splits.skipped),
                    config.dataset, DATASET_RECORD)  # fmt: skip
    if save and record_path is not None and record is None:
        write_dataset_record(run_dir, config, splits)
    return splits


def write_dataset_record(run_dir: str | Path, config: TrainConfig, splits: DatasetSplits) -> None:
    """Write ``RUN/dataset.json`` (atomically) for a folder dataset: classes, channel count,
    image size, the splits' mean/std, image counts and skipped files. Nothing for a built-in
    dataset."""
    if not config.dataset.startswith(FOLDER_PREFIX):
        return
    record = {
        "format_version": _FORMAT_VERSION,
        "dataset": config.dataset,
        "classes": list(_class_names(config.dataset)),
        "channels": splits.input_channels,
        "size": splits.input_size,
        "mean": list(splits.train.mean),
        "std": list(splits.train.std),
        "images": {k: len(getattr(splits, k)) for k in ("train", "val", "test")},
        "skipped": list(splits.skipped),
    }
    write_text_atomic(Path(run_dir) / DATASET_RECORD, json.dumps(record, indent=2) + "\n")


def _class_names(dataset: str) -> tuple[str, ...]:
    from supernet.data import list_image_folder

    return tuple(list_image_folder(dataset[len(FOLDER_PREFIX) :]))
