"""A run directory made from published Once-for-All weights instead of training.

``import_ofa_run`` reads a state dict in the layout of the reference package's ``OFAMobileNetV3``
(``ofa_mbv3_d234_e346_k357_w1.0`` / ``_w1.2``), converts it with
:func:`supernet.nn.ofa_weights.from_reference_state_dict` and writes ``config.yaml``,
``checkpoint.pt`` and ``dataset.json`` as a finished training run would, so ``eval``, ``predict``,
``search``, ``specialize`` and ``transfer`` take it like any other run. The dataset (3-channel
images, usually ``folder:PATH``) is normalized with the ImageNet statistics the weights were
trained with. When its class count is not the checkpoint's (1000 for the published files), the
classifier is re-initialized for the dataset's classes (seeded) and a warning says so: the
features stay the published ones, the head needs training (``supernet transfer`` trains it).

Reference: Cai et al., "Once-for-All", ICLR'20, arXiv 1908.09791 (the published supernets);
ImageNet normalization statistics as in the reference's data provider.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import torch

from supernet.checkpoint import save_checkpoint
from supernet.errors import CheckpointError, ConfigError
from supernet.nn import create_supernet
from supernet.nn.ofa_weights import (
    REFERENCE_WIDTHS,
    from_reference_state_dict,
    unwrap_reference_checkpoint,
)
from supernet.space import get_space
from supernet.train.config import load_config
from supernet.train.data import load_run_dataset, write_dataset_record
from supernet.train.rundir import CHECKPOINT, prepare_run_dir
from supernet.train.trainer import build_supernet, checkpoint_metadata

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "import_ofa_run", "read_reference_weights"]

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMPORT_PRESET = "import-ofa"
# One placeholder phase so the config validates; the checkpoint marks it done (phase_index 1).
_PHASES = [{"name": "published-weights", "epochs": 1, "lr": 0.1, "distill": False}]


def read_reference_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A reference ``OFAMobileNetV3`` state dict read with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: the file is missing, unreadable, holds objects a weights-only load
            refuses (code is never run), or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"weights file {str(path)!r} is refused by the weights-only load (no code from it is "
            f"run) or is damaged: {first}"
        ) from exc
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"weights file {str(path)!r} cannot be read: {exc}") from exc
    return unwrap_reference_checkpoint(obj, str(path))


def import_ofa_run(
    weights: str | Path,
    *,
    space: str,
    run_dir: str | Path,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
) -> Path:
    """Write a finished run directory holding the published weights at ``weights``.

    ``overrides`` are training-config keys (``dataset``, ``seed``, ...); ``space`` must be
    ``ofa-mbv3`` (width 1.0) or ``ofa-mbv3-w1.2``. The checkpoint is written atomically.

    Raises:
        ConfigError: another space, a dataset that is not 3-channel, or bad overrides.
        CheckpointError: an unreadable file or a state dict not in the reference layout (the
            first unexpected or missing key, with the expected shape).
        RunDirError: ``run_dir`` holds another run and ``force`` is not given.
        DataNotFoundError: the dataset is missing.
    """
    if space not in REFERENCE_WIDTHS:
        raise ConfigError(
            f"space = {space!r}; the published Once-for-All weights fit "
            f"{', '.join(sorted(REFERENCE_WIDTHS))}"
        )
    data = {"space": space, "phases": _PHASES, **(overrides or {})}
    data["preset"] = IMPORT_PRESET
    config = load_config(overrides=data)
    if config.space != space:
        raise ConfigError(f"--set space={config.space} contradicts --space {space}")
    state = read_reference_weights(weights)
    classes = _checkpoint_classes(state)
    template = create_supernet(get_space(space, num_classes=classes)).state_dict()
    model = from_reference_state_dict(state, template, where=str(weights))
    splits = load_run_dataset(config, stats=(IMAGENET_MEAN, IMAGENET_STD))
    torch.manual_seed(config.seed)
    _, supernet = build_supernet(config, splits)  # refuses a dataset that is not 3-channel
    run_dir, removed = prepare_run_dir(run_dir, config, resume=False, force=force)
    if removed:
        log.warning("--force: removed %s from %s", ", ".join(removed), run_dir)
    write_dataset_record(run_dir, config, splits)
    if splits.num_classes != classes:
        log.warning(
            "the weights classify %d classes, %s has %d: the classifier is re-initialized "
            "(train it, e.g. with supernet transfer); the features are the published ones",
            classes, config.dataset, splits.num_classes,
        )  # fmt: skip
        fresh = supernet.state_dict()
        model = {k: fresh[k] if k.startswith("classifier.") else v for k, v in model.items()}
    supernet.load_state_dict(model)
    payload = {
        "model": supernet.state_dict(),
        "teacher": None,
        "optimizer": None,
        "phase_index": len(config.phases),
        "epoch": 0,
        "step": 0,
        "metrics": [],
        "imported_from": str(weights),
    }
    save_checkpoint(run_dir / CHECKPOINT, payload, metadata=checkpoint_metadata(config))
    return run_dir


def _checkpoint_classes(state: dict[str, torch.Tensor]) -> int:
    for key in ("classifier.linear.weight", "classifier.linear.linear.weight"):
        for prefix in ("", "module."):
            if prefix + key in state and state[prefix + key].ndim == 2:
                return int(state[prefix + key].shape[0])
    raise CheckpointError(
        "missing key 'classifier.linear.weight' (expected shape (classes, 1280) at width 1.0, "
        "(classes, 1536) at width 1.2)"
    )
