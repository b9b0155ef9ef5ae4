"""What every compression method works on: one extracted subnet of a trained run, with the data
and the fine-tuning recipe they all share (:class:`CompressContext`, built by
:func:`load_context`).

A subnet is named by a ``subnet.json`` (written by `supernet specialize` / `export`), a device name
whose specialized subnet the run holds (``RUN/specialized/NAME/subnet.json``), or ``largest`` (the
full supernet's largest subnet). The subnet is extracted, its BatchNorm re-calibrated on training
images, and handed over in eval mode on the CPU. Every method and every baseline fine-tunes with
:attr:`CompressContext.finetune` (one recipe: SGD with momentum, cosine learning rate, the same
seeded batches), so their accuracies compare.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from supernet.data import BatchLoader, resize
from supernet.errors import ConfigError
from supernet.nn.registry import create_supernet
from supernet.space import ArchConfig, get_space
from supernet.train import load_run
from supernet.train.bn import recalibrate_bn
from supernet.train.evaluate import calibration_loader

__all__ = [
    "CALIB_IMAGES",
    "FINETUNE_LR",
    "VAL_IMAGES",
    "CompressContext",
    "ProgressFactory",
    "load_context",
    "rebuild_subnet",
    "resolve_subnet",
]

CALIB_IMAGES = 512
"""Training images in :attr:`CompressContext.calib_images` (and for BN re-calibration)."""
VAL_IMAGES = 1000
"""Validation images that :attr:`CompressContext.evaluate` scores on (fixed, seeded subset)."""
FINETUNE_LR = 0.01
"""Peak learning rate of :attr:`CompressContext.finetune` (a tenth of the supernet's 0.1, as
Deep Compression retrains pruned nets with a reduced rate, arXiv 1510.00149, Sec. 2)."""

ProgressFactory = Callable[..., contextlib.AbstractContextManager[Any]]
"""``progress(label, total=N)`` → a context manager whose value has ``update(done, total, what)``
(e.g. :class:`supernet.cli.progress.StepProgress` bound to a console)."""


@dataclass
class CompressContext:
    """One subnet to compress and the shared data and recipe.

    Shapes: ``train_batches(n)`` yields ``(x float32 [B, C, R, R], y int64 [B])`` with ``R =
    resolution``; ``calib_images`` is ``[N, C, R, R]`` (``N`` ≈ :data:`CALIB_IMAGES`); the model
    maps ``[B, C, R, R]`` → logits ``[B, num_classes]``.

    Attributes:
        model: the fp32 extracted subnet (eval mode, CPU, BN re-calibrated). Methods copy it.
        arch: its arch config as a dict (:meth:`ArchConfig.to_dict`).
        resolution: input resolution R in pixels.
        in_channels, num_classes: input channels C and classes.
        train_batches: ``n`` → ``n`` training batches, cycling over the train split; every call
            starts from the same seed, so each method and baseline sees the same batches.
        calib_images: training images for calibration (quantization ranges, feature sampling).
        evaluate: ``model`` → top-1 in % on a fixed validation subset (:data:`VAL_IMAGES`
            images), in eval mode; the caller's train/eval mode is restored.
        test: ``model`` → top-1 in % on the test split.
        finetune: ``(model, steps)`` → fine-tunes in place (SGD momentum 0.9, cosine learning
            rate from ``finetune_lr`` to 0, weight decay 4e-5 on weights with ``ndim > 1``);
            pruning masks (``torch.nn.utils.prune``) and parametrizations keep working because
            only ``model.parameters()`` are stepped. Leaves the model in eval mode.
        out_dir: where artifacts go.
        seed: seed of the batches and of the methods' own randomness.
        lut_path: the run's latency table (``RUN/lut.json``) if it exists.
        progress: a :data:`ProgressFactory` or ``None`` (library code then reports nothing).
        rebuild: how :func:`rebuild_subnet` builds the architecture again: ``{"space",
            "num_classes", "norm", "dropout"}`` (saved in compressed files).
        finetune_lr: peak learning rate of ``finetune``.
    """

    model: nn.Module
    arch: dict[str, Any]
    resolution: int
    in_channels: int
    num_classes: int
    train_batches: Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]
    calib_images: torch.Tensor
    evaluate: Callable[[nn.Module], float]
    test: Callable[[nn.Module], float]
    finetune: Callable[[nn.Module, int], None]
    out_dir: Path
    seed: int
    lut_path: Path | None
    progress: ProgressFactory | None = None
    rebuild: dict[str, Any] = field(default_factory=dict)
    finetune_lr: float = FINETUNE_LR


def resolve_subnet(run_dir: Path, subnet: str, space: Any) -> tuple[ArchConfig, str]:
    """The arch config that ``subnet`` names, and where it came from.

    ``subnet`` is ``largest``, a device name with ``run_dir/specialized/NAME/subnet.json``, a
    ``subnet.json`` file, or a directory holding one.

    Raises:
        ConfigError: nothing of that name; the message lists the devices the run has.
    """
    if subnet == "largest":
        return space.largest(), "largest"
    path = Path(subnet)
    if path.is_dir():
        path = path / "subnet.json"
    device = run_dir / "specialized" / subnet / "subnet.json"
    if not path.is_file() and "/" not in subnet and device.is_file():
        path = device
    if not path.is_file():
        devices = sorted(p.parent.name for p in (run_dir / "specialized").glob("*/subnet.json"))
        raise ConfigError(
            f"subnet = {subnet!r} is not known; choose 'largest', a subnet.json file, or a device "
            f"specialized in {run_dir}: {devices or 'none (run `supernet specialize` first)'}"
        )
    try:
        doc = json.loads(path.read_bytes())
        config = ArchConfig.from_dict(doc["config"]).validate(space)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not a subnet.json with a valid 'config': {exc}") from exc
    return config, str(path)


def rebuild_subnet(rebuild: dict[str, Any], arch: dict[str, Any]) -> nn.Module:
    """A freshly initialized static subnet of architecture ``arch`` (weights to be loaded).

    Raises:
        ConfigError: an unknown space or an arch config that is not valid in it.
    """
    space = get_space(rebuild["space"], num_classes=rebuild["num_classes"])
    config = ArchConfig.from_dict(arch).validate(space)
    supernet = create_supernet(space, dropout=rebuild["dropout"], norm=rebuild["norm"])
    return supernet.get_subnet(config).eval()


def load_context(
    run_dir: str | Path,
    subnet: str,
    *,
    out_dir: str | Path,
    seed: int = 0,
    progress: ProgressFactory | None = None,
    val_images: int = VAL_IMAGES,
    calib_images: int = CALIB_IMAGES,
    test_images: int | None = None,
    finetune_lr: float = FINETUNE_LR,
) -> CompressContext:
    """Load a run, extract ``subnet`` (see :func:`resolve_subnet`) and build its context.

    Args:
        run_dir: a trained run directory.
        subnet: ``largest``, a device name of the run, or a ``subnet.json`` path.
        out_dir: the artifacts' directory (created).
        seed: seed of the training batches and subsets.
        progress: see :data:`ProgressFactory`.
        val_images, calib_images: sizes of the validation and calibration subsets.
        test_images: score only the first test images (default: all).
        finetune_lr: peak learning rate of the shared fine-tuning recipe.

    Raises:
        ConfigError: an unknown subnet name or bad sizes; RunDirError / CheckpointError: no
            trained run in ``run_dir``.
    """
    if val_images < 1 or calib_images < 1 or not finetune_lr > 0:
        raise ConfigError(
            f"val_images = {val_images}, calib_images = {calib_images} must be >= 1 and "
            f"finetune_lr = {finetune_lr} > 0"
        )
    run_dir = Path(run_dir)
    run = load_run(run_dir, device="cpu")
    config, _ = resolve_subnet(run_dir, subnet, run.space)
    res = config.resolution
    batch = run.config.eval_batch_size
    calib = calibration_loader(run.splits.train, calib_images, batch, seed)
    calib_x = torch.cat([resize(x, res) for x, _ in calib])
    model = run.supernet.get_subnet(config).to("cpu")
    recalibrate_bn(model, iter(calib_x.split(batch)))
    model.eval()

    n_val = min(val_images, len(run.splits.val))
    val_idx = np.sort(np.random.default_rng(seed).permutation(len(run.splits.val))[:n_val])
    val = _resized(BatchLoader(run.splits.val.subset(val_idx), batch, shuffle=False,
                               augment=False), res)  # fmt: skip
    test_loader = BatchLoader(run.splits.test, batch, shuffle=False, augment=False,
                              limit=test_images)  # fmt: skip
    train_split, train_batch = run.splits.train, run.config.batch_size

    def train_batches(n: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(seed)
        drop = len(train_split) > train_batch
        loader = BatchLoader(train_split, train_batch, shuffle=True, augment=run.config.augment,
                             generator=generator, drop_last=drop)  # fmt: skip
        done = 0
        while done < n:
            for x, y in loader:
                yield resize(x, res), y
                done += 1
                if done == n:
                    return

    test_cache: list[Any] = []

    def test(module: nn.Module) -> float:
        if not test_cache:
            test_cache.append(_resized(test_loader, res))
        return _top1(module, test_cache[0])

    def finetune(module: nn.Module, steps: int) -> None:
        _finetune(module, steps, train_batches, finetune_lr, progress)

    lut = run_dir / "lut.json"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return CompressContext(
        model=model,
        arch=config.to_dict(),
        resolution=res,
        in_channels=run.splits.input_channels,
        num_classes=run.splits.num_classes,
        train_batches=train_batches,
        calib_images=calib_x,
        evaluate=lambda m: _top1(m, val),
        test=test,
        finetune=finetune,
        out_dir=out,
        seed=seed,
        lut_path=lut if lut.is_file() else None,
        progress=progress,
        rebuild={
            "space": run.space.name,
            "num_classes": run.splits.num_classes,
            "norm": run.config.norm,
            "dropout": run.config.dropout,
        },
        finetune_lr=finetune_lr,
    )


def _resized(loader: BatchLoader, res: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(resize(x, res), y) for x, y in loader]


@torch.no_grad()
def _top1(model: nn.Module, batches: Any) -> float:
    """Top-1 accuracy in % of ``model`` in eval mode; its mode is restored."""
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        for x, y in batches:
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    finally:
        model.train(was_training)
    return 100.0 * correct / max(total, 1)


def _finetune(
    model: nn.Module,
    steps: int,
    batches: Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]],
    lr: float,
    progress: ProgressFactory | None,
) -> None:
    """The shared recipe (see :class:`CompressContext`); ``steps`` = 0 does nothing."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"fine-tuning steps = {steps!r} must be an int >= 0")
    if steps == 0:
        return
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    rest = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": 4e-5}, {"params": rest}],
                                lr=lr, momentum=0.9)  # fmt: skip
    bar = progress("fine-tuning", total=steps) if progress else contextlib.nullcontext()
    model.train()
    try:
        with bar as p:
            for step, (x, y) in enumerate(batches(steps)):
                for group in optimizer.param_groups:  # cosine from lr to 0 over the steps
                    group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / steps))
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if p is not None:
                    p.update(step + 1, steps, f"loss {loss.item():.3f}")
    finally:
        model.eval()
