"""The victims of the attack: a model, the parameters whose update is shared, and a private batch.

- Setting (a), the paper's: :func:`lenet_victim` — the sigmoid LeNet (paper initialisation) on
  images of a dataset resized to 32×32, pixels in [0, 1] without normalization (as the authors'
  code feeds CIFAR), every parameter shared.
- Setting (b), supernet's own: :func:`transfer_victim` — a subnet of a trained supernet set up for
  a TinyTL method on a transfer target (:func:`supernet.transfer.build_transfer_model`), sharing
  exactly the parameters that method trains. The model runs with plain autograd (the
  memory-efficient modules do not support the double backward of the attack), fp32 frozen
  weights, and in eval mode (dropout off), so the update is a deterministic function of the batch;
  its hard activations are swapped for twice-differentiable equals
  (:mod:`supernet.privacy.differentiable`).

Every victim draws its private batch and any new weights from ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from supernet.data import ImageDataset, load_dataset, resize, to_float
from supernet.errors import ConfigError
from supernet.privacy.differentiable import make_twice_differentiable
from supernet.privacy.dlg import MAX_BATCH_SIZE
from supernet.privacy.lenet import make_lenet
from supernet.train import LoadedRun, load_run

__all__ = ["LENET_DATASETS", "Victim", "lenet_victim", "transfer_victim"]

LENET_DATASETS = ("fashion-mnist", "digits")


@dataclass(frozen=True, eq=False)
class Victim:
    """A model, its shared parameters and one private batch.

    Shapes: ``images`` float ``[B, C, H, W]`` in the model's input space (normalized with
    ``mean``/``std``, C values each), ``labels`` int64 ``[B]``.
    """

    model: nn.Module
    shared_names: tuple[str, ...]
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ConfigError(f"batch size = {batch_size!r} must be an int in 1..{MAX_BATCH_SIZE}")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(
            f"batch size = {batch_size} is not supported by the attack; allowed: "
            f"1..{MAX_BATCH_SIZE}"
        )


def _draw(split: ImageDataset, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(split), generator=generator)[:batch_size]
    return split.images[index], split.labels[index]


def lenet_victim(
    *, seed: int = 0, batch_size: int = 1, dataset: str = "fashion-mnist", image_size: int = 32
) -> Victim:
    """Setting (a): the paper's LeNet (initialised from ``seed``) and ``batch_size`` test images
    of ``dataset`` (drawn with ``seed``), bilinearly resized to ``image_size`` (Fashion-MNIST
    28 → 32, digits 8 → 32).

    Shapes: images ``[B, 1, image_size, image_size]`` in [0, 1].

    Raises:
        ConfigError: unknown dataset, batch size outside 1..:data:`MAX_BATCH_SIZE`, image size
            not a multiple of 4.
        DataNotFoundError: Fashion-MNIST is not installed.

    Reference: DLG, arXiv 1906.08935, Sec. 4.1.
    """
    _check_batch_size(batch_size)
    if dataset not in LENET_DATASETS:
        raise ConfigError(f"dataset = {dataset!r} is not known; choose from {LENET_DATASETS}")
    split = load_dataset(dataset).test
    images, labels = _draw(split, batch_size, seed)
    model = make_lenet(
        in_channels=int(images.shape[1]),
        num_classes=split.num_classes,
        image_size=image_size,
        seed=seed,
    )
    x = resize(images, image_size).float() / 255.0
    names = tuple(n for n, _ in model.named_parameters())
    channels = int(images.shape[1])
    return Victim(
        model,
        names,
        x,
        labels,
        split.num_classes,
        (0.0,) * channels,
        (1.0,) * channels,
        f"LeNet (sigmoid) on {dataset} {image_size}×{image_size}",
    )


def transfer_base(
    run: str | Path | LoadedRun, subnet: str, target: str, *, device: str = "cpu"
) -> tuple[LoadedRun, Any, Any, nn.Module]:
    """What a TinyTL update on ``run`` starts from: ``(run, arch config, target, subnet)`` — the
    loaded run, ``subnet`` resolved in its space, ``target`` loaded with the run's statistics,
    and the subnet extracted and BN re-calibrated on 500 of the target's training images.

    Raises:
        ConfigError: unknown subnet / target.
        RunDirError, CheckpointError, DataNotFoundError: the run cannot be loaded.

    Reference: TinyTL, arXiv 2007.11622, Sec. 4.1.
    """
    from supernet.transfer import load_target, prepare_subnet
    from supernet.transfer.run import resolve_subnet

    if not isinstance(run, LoadedRun):
        run = load_run(run, device=device)
    config = resolve_subnet(run.space, subnet)
    if config is None:
        raise ConfigError(f"subnet = {subnet!r}: name a subnet (largest, smallest, middle, JSON)")
    source = run.splits.train
    data = load_target(target, input_size=run.splits.input_size,
                       input_channels=run.space.input_channels, mean=source.mean,
                       std=source.std)  # fmt: skip
    base = prepare_subnet(run.supernet, config, data.splits.train, calib_images=500,
                          device=run.device)  # fmt: skip
    return run, config, data, base


def transfer_victim(
    run: str | Path | LoadedRun,
    method: str,
    *,
    seed: int = 0,
    batch_size: int = 1,
    target: str = "digits",
    subnet: str = "smallest",
    device: str = "cpu",
) -> Victim:
    """Setting (b): ``subnet`` of the supernet of ``run`` (a run directory, or a run loaded
    with :func:`supernet.train.load_run` to share it between calls; BN re-calibrated on the target),
    set up for TinyTL ``method`` with new weights from ``seed``, sharing the parameters the
    method trains; the batch is ``batch_size`` images of the target's train split.

    Shapes: images ``[B, C, R, R]`` normalized with the source statistics, R the subnet's
    resolution.

    Raises:
        ConfigError: unknown method / target / subnet, batch size outside
            1..:data:`MAX_BATCH_SIZE`.
        RunDirError, CheckpointError, DataNotFoundError: the run cannot be loaded.

    Reference: TinyTL, arXiv 2007.11622, Sec. 3 (what each method trains).
    """
    from supernet.transfer import build_transfer_model, check_method

    check_method(method)
    _check_batch_size(batch_size)
    run, config, data, base = transfer_base(run, subnet, target, device=device)
    split = data.splits.train
    generator = torch.Generator().manual_seed(seed)
    model = build_transfer_model(
        base,
        data.num_classes,
        method,
        resolution=config.resolution,
        efficient=False,
        quantize_frozen=False,
        generator=generator,
    )
    make_twice_differentiable(model)
    model.eval()
    names = tuple(n for n, p in model.named_parameters() if p.requires_grad)
    images, labels = _draw(split, batch_size, seed)
    x = to_float(resize(images, config.resolution), split.mean, split.std).to(run.device)
    return Victim(
        model,
        names,
        x,
        labels.to(run.device),
        data.num_classes,
        split.mean,
        split.std,
        f"{method} on subnet {subnet} (resolution {config.resolution}) of "
        f"{Path(run.run_dir).name}, target {target}",
    )
