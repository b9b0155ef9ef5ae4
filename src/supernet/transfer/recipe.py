"""TinyTL's training recipe and loop: Adam, cosine decay per iteration without warm-up, batch 8,
label smoothing 0.1; validation each epoch, test once at the end.

Reference: TinyTL (Cai, Gan, Zhu, Han; NeurIPS'20; arXiv 2007.11622), Sec. 4.1 "Training
details" (Adam, batch size 8, cosine learning-rate decay, label smoothing) and Sec. 4.3 (batch size
1). The paper trains 50 epochs on 224 px ImageNet-sized targets; the defaults here are sized for
a CPU (digits: minutes per method, see :data:`DEFAULT_EPOCHS`).

Reproducibility: every random draw comes from :func:`transfer_generators` (seeded from
``TransferConfig.seed``): the new classifier and lite residual weights, the shuffling, and the
dropout masks — dropout draws from torch's global generator, so the loop runs inside
``torch.random.fork_rng`` seeded from the config and restores the global state afterwards.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from supernet.data import BatchLoader, DatasetSplits, random_crop, resize
from supernet.errors import ConfigError
from supernet.runtime import make_generators
from supernet.train import accuracy
from supernet.transfer.methods import build_transfer_model, check_method

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_LR",
    "DEFAULT_SHIFT",
    "TransferConfig",
    "TransferReporter",
    "TransferResult",
    "build_configured_model",
    "cosine_factor",
    "make_optimizer",
    "random_shift",
    "train_transfer",
    "transfer_generators",
]

DEFAULT_EPOCHS = 10
"""Epochs of the CPU-sized default recipe (the paper: 50 on larger targets). On digits from the
largest ``mbv3-tiny`` subnet of the Fashion-MNIST supernet, ``tinytl-l+b`` still gained validation
accuracy from 6 to 10 epochs (``full`` did not); 10 epochs take 1-4 minutes per method on one
CPU thread of the 2-core development machine."""
DEFAULT_SHIFT = 0
"""Pixels of random translation by default: none. A 2-pixel shift (the stand-in for the paper's
random crops; flips would change what a digit means) lowered the validation accuracy of both
``full`` and ``tinytl-l+b`` on digits after 6 epochs (2 seeds each), so it is an option only."""
DEFAULT_LR = {"full": 1e-3, "last": 1e-2, "norm+last": 1e-2, "bias+last": 1e-2,
              "tinytl-l": 1e-2, "tinytl-l+b": 1e-2}  # fmt: skip
"""Default Adam learning rate per method (``TransferConfig.lr = None``): fine-tuning every
weight needs a smaller step than training a few biases, norms or a classifier."""


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} = {value!r} must be an int >= {low}")


def _check_float(name: str, value: object, low: float, below: float | None = None,
                 *, open_low: bool = False) -> None:  # fmt: skip
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low) and (below is None or value < below)
    if not ok:
        lo = f"({low}" if open_low else f"[{low}"
        hi = f"{below})" if below is not None else "inf)"
        raise ConfigError(f"{name} = {value!r} must be a number in {lo}, {hi}")


@dataclass(frozen=True)
class TransferConfig:
    """One transfer-learning run's recipe (TinyTL, arXiv 2007.11622, Sec. 4.1).

    Attributes:
        method: one of :data:`~supernet.transfer.methods.METHODS`.
        epochs: passes over the target's train split.
        lr: Adam's initial learning rate; ``None`` takes :data:`DEFAULT_LR` of the method.
        batch_size: images per step (8: the paper's; 1 works).
        label_smoothing: cross-entropy label smoothing ε (default 0.1). The TinyTL reference
            scripts set it per target: 0.7 for the fine-grained sets (Flowers, Cars, CUB,
            Pets, Aircraft), 0.1 for CIFAR-10/100 and Food-101 (mit-han-lab/tinyml,
            ``tinytl/exp_scripts/batch8``); our built-in target (digits, 10 coarse classes)
            is of the second kind, so 0.1; set 0.7 for a fine-grained image folder.
        dropout: dropout before the new classifier (0.2, as the paper).
        weight_decay: Adam's L2 penalty (0: none).
        quantize_frozen: frozen conv/linear weights at 8 bits (k-means, 256 centroids).
        efficient: the memory-efficient autograd modules (else plain autograd).
        eval_batch_size: images per evaluation batch (validation and test).
        shift: random translation of each training image by up to this many pixels per axis
            (after resizing; the border repeats the edge pixels; 0: no augmentation).
        train_limit: images per epoch (the first of each epoch's shuffled order; ``None``: all)
            — for quick runs.
        seed: seed of every random draw of the run.
        lite_residual_everywhere: every method's network carries the lite residual modules, as
            the TinyTL reference's baselines do (trained or frozen by the method's rule; see
            :func:`~supernet.transfer.methods.build_transfer_model`); ``False``: only
            ``tinytl-l`` and ``tinytl-l+b`` have them.

    Raises:
        ConfigError: a field out of range (the message names the field, value and range).
    """

    method: str = "tinytl-l+b"
    epochs: int = DEFAULT_EPOCHS
    lr: float | None = None
    batch_size: int = 8
    label_smoothing: float = 0.1
    dropout: float = 0.2
    weight_decay: float = 0.0
    quantize_frozen: bool = True
    efficient: bool = True
    eval_batch_size: int = 250
    shift: int = DEFAULT_SHIFT
    train_limit: int | None = None
    seed: int = 0
    lite_residual_everywhere: bool = False

    def __post_init__(self) -> None:
        check_method(self.method)
        for name in ("epochs", "batch_size", "eval_batch_size"):
            _check_int(name, getattr(self, name), 1)
        _check_int("seed", self.seed, 0)
        _check_int("shift", self.shift, 0)
        if self.train_limit is not None:
            _check_int("train_limit", self.train_limit, 1)
        if self.lr is not None:
            _check_float("lr", self.lr, 0.0, open_low=True)
        _check_float("label_smoothing", self.label_smoothing, 0.0, 1.0)
        _check_float("dropout", self.dropout, 0.0, 1.0)
        _check_float("weight_decay", self.weight_decay, 0.0)
        for name in ("quantize_frozen", "efficient", "lite_residual_everywhere"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} = {getattr(self, name)!r} must be true or false")

    @property
    def learning_rate(self) -> float:
        """``lr``, or the method's default from :data:`DEFAULT_LR`."""
        return DEFAULT_LR[self.method] if self.lr is None else float(self.lr)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values (``lr`` resolved)."""
        return {**asdict(self), "lr": self.learning_rate}


class TransferRNG(NamedTuple):
    """Independent random streams of one run (see :func:`transfer_generators`)."""

    build: torch.Generator
    loader: torch.Generator
    dropout_seed: int


def transfer_generators(seed: int) -> TransferRNG:
    """Three independent streams from ``seed`` (via :func:`supernet.runtime.make_generators`):
    new weights (classifier, lite residual), batch order, and the seed of the dropout masks.

    Raises:
        ConfigError: ``seed`` is not a non-negative int.
    """
    np_rng, loader = make_generators(seed)
    build = torch.Generator().manual_seed(int(np_rng.integers(2**62)))
    return TransferRNG(build, loader, int(np_rng.integers(2**62)))


def build_configured_model(
    subnet: nn.Module, num_classes: int, config: TransferConfig, *, resolution: int
) -> nn.Module:
    """:func:`~supernet.transfer.methods.build_transfer_model` with the method, dropout,
    memory-efficient modules, 8-bit frozen weights, lite residual placement and RNG of
    ``config``: the one place a run, a comparison and the privacy cost build their network.

    Shapes: ``[B, C, resolution, resolution]`` → logits ``[B, num_classes]``.

    Raises:
        ConfigError: as :func:`~supernet.transfer.methods.build_transfer_model`.
    """
    return build_transfer_model(
        subnet, num_classes, config.method, resolution=resolution, dropout=config.dropout,
        efficient=config.efficient, quantize_frozen=config.quantize_frozen,
        lite_residual_everywhere=config.lite_residual_everywhere,
        generator=transfer_generators(config.seed).build,
    )  # fmt: skip


def cosine_factor(step: int, total_steps: int) -> float:
    """Cosine decay without warm-up, per iteration: ``0.5 · (1 + cos(π · step / total_steps))``
    (1 at step 0, 0 at ``total_steps``; clamped beyond).

    Reference: SGDR (Loshchilov & Hutter, arXiv 1608.03983), Eq. 5 with one cycle and η_min = 0,
    as TinyTL uses it (arXiv 2007.11622, Sec. 4.1).
    """
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))


def make_optimizer(
    model: nn.Module, config: TransferConfig, total_steps: int
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    """Adam over the parameters of ``model`` that require grad, and a per-iteration cosine
    schedule (``scheduler.step()`` after every optimizer step).

    Raises:
        ConfigError: no parameter trains, or ``total_steps`` < 1.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("no parameter of the model trains (requires_grad is False everywhere)")
    _check_int("total_steps", total_steps, 1)
    optimizer = torch.optim.Adam(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_factor(step, total_steps)
    )
    return optimizer, schedule


def random_shift(images: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by a random offset in ``[-pixels, pixels]`` per axis (one draw per
    image from ``generator``), filling the border with the nearest edge pixel.

    Shapes: ``[N, C, H, W]`` → ``[N, C, H, W]``.
    """
    if pixels == 0:
        return images
    h, w = images.shape[-2:]
    padded = F.pad(images, (pixels,) * 4, mode="replicate")
    return random_crop(padded, pixels, generator)[..., pixels : pixels + h, pixels : pixels + w]


class TransferReporter:
    """Hooks for progress display (the CLI shows a rich progress bar); every hook is optional."""

    def on_epoch_start(self, label: str, epoch: int, epochs: int, steps: int) -> None:
        """Epoch ``epoch`` (0-based) of ``epochs``, of ``steps`` optimizer steps, begins."""

    def on_step(self, loss: float, lr: float) -> None:
        """One step done: its loss and the learning rate it used."""

    def on_epoch_end(self, label: str, row: dict[str, Any]) -> None:
        """An epoch's row: ``epoch``, ``train_loss``, ``val_accuracy`` (%), ``val_loss``,
        ``lr``, ``seconds``."""


@dataclass(frozen=True)
class TransferResult:
    """What one run of the recipe gives.

    Attributes:
        history: one row per epoch (see :meth:`TransferReporter.on_epoch_end`).
        val_accuracy: top-1 % on the validation split after the last epoch.
        test_accuracy: top-1 % on the test split after the last epoch (the reported number).
        test_loss: mean cross-entropy (no smoothing) on the test split.
        steps: optimizer steps taken.
        train_seconds: wall time of the training epochs (evaluation included).
    """

    config: TransferConfig
    history: tuple[dict[str, Any], ...]
    val_accuracy: float
    test_accuracy: float
    test_loss: float
    steps: int
    train_seconds: float


def _transform_update(
    model: nn.Module,
    transform: Callable[[dict[str, torch.Tensor], int], dict[str, torch.Tensor]],
    step: int,
) -> None:
    params = {n: p for n, p in model.named_parameters() if p.grad is not None}
    new = transform({n: p.grad for n, p in params.items()}, step)
    for name, grad in new.items():
        params[name].grad = grad.to(params[name].grad.dtype)


def train_transfer(
    model: nn.Module,
    splits: DatasetSplits,
    config: TransferConfig,
    *,
    resolution: int,
    device: torch.device | str = "cpu",
    label: str = "",
    reporter: TransferReporter | None = None,
    update_transform: Callable[[dict[str, torch.Tensor], int], dict[str, torch.Tensor]]
    | None = None,
) -> TransferResult:
    """Train ``model`` (built by :func:`~supernet.transfer.methods.build_transfer_model`, its
    trainable parameters chosen) on ``splits.train`` with the recipe ``config``, in place.

    Each epoch is one shuffled pass in batches of ``config.batch_size`` (the last one smaller);
    images are resized to ``resolution`` (bilinear) after normalization; the loss is
    cross-entropy with label smoothing. After every epoch the model is scored on ``splits.val``;
    ``splits.test`` is scored once, after the last epoch. The model is left in train mode.

    ``update_transform(grads, step)``, when given, receives every step's gradients of the
    trainable parameters (``{name: grad}``) before the optimizer step and returns the gradients
    the step uses instead — the update a device shares after a defense (federated learning; see
    :mod:`supernet.privacy.defenses`).

    Shapes: the splits hold images ``[N, C, H, W]``; the model sees ``[B, C, resolution,
    resolution]`` and returns logits ``[B, num_classes]``.

    Raises:
        ConfigError: no parameter trains, an empty train split, or ``resolution`` < 1.

    Reference: TinyTL (arXiv 2007.11622), Sec. 4.1 (recipe).
    """
    _check_int("resolution", resolution, 1)
    if len(splits.train) == 0:
        raise ConfigError("the target's train split is empty")
    device = torch.device(device)
    rng = transfer_generators(config.seed)
    loader = BatchLoader(splits.train, config.batch_size, shuffle=True, augment=False,
                         generator=rng.loader, limit=config.train_limit)  # fmt: skip
    val = BatchLoader(splits.val, config.eval_batch_size, shuffle=False, augment=False)
    optimizer, schedule = make_optimizer(model, config, config.epochs * len(loader))
    reporter = reporter or TransferReporter()
    history: list[dict[str, Any]] = []
    start, steps = time.perf_counter(), 0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(rng.dropout_seed)
        for epoch in range(config.epochs):
            reporter.on_epoch_start(label, epoch, config.epochs, len(loader))
            t0, loss_sum = time.perf_counter(), 0.0
            model.train()
            for x, y in loader:
                x = random_shift(resize(x, resolution), config.shift, rng.loader)
                x, y = x.to(device), y.to(device)
                lr = optimizer.param_groups[0]["lr"]
                logits = model(x)
                loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if update_transform is not None:
                    _transform_update(model, update_transform, steps)
                optimizer.step()
                schedule.step()
                steps += 1
                loss_sum += float(loss.detach())
                reporter.on_step(float(loss.detach()), lr)
            val_acc, val_loss, _ = accuracy(model, val, resolution, device) if len(val.dataset) \
                else (float("nan"), float("nan"), 0)  # fmt: skip
            row = {"epoch": epoch + 1, "train_loss": loss_sum / len(loader),
                   "val_accuracy": val_acc, "val_loss": val_loss, "lr": lr,
                   "seconds": time.perf_counter() - t0}  # fmt: skip
            history.append(row)
            reporter.on_epoch_end(label, row)
    seconds = time.perf_counter() - start
    test = BatchLoader(splits.test, config.eval_batch_size, shuffle=False, augment=False)
    test_acc, test_loss, _ = accuracy(model, test, resolution, device) if len(test.dataset) \
        else (float("nan"), float("nan"), 0)  # fmt: skip
    model.train()
    return TransferResult(config, tuple(history), history[-1]["val_accuracy"], test_acc,
                          test_loss, steps, seconds)  # fmt: skip
