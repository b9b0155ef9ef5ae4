"""Progressive shrinking training loop (nanoGPT style: choices made once at the top, one loop).

Reference: Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Sec. 3.2: train the full network,
then make kernel size, depth and expand ratio elastic in turn, sampling several subnets per step
and distilling from the full network; resolution is elastic throughout.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from supernet.checkpoint import (
    load_checkpoint,
    numpy_rng_state,
    restore_numpy_rng,
    restore_torch_rng,
    save_checkpoint,
    torch_rng_state,
)
from supernet.data import BatchLoader, DatasetSplits, resize
from supernet.errors import ConfigError, SupernetError, TrainingInterrupted
from supernet.nn import OFAMobileNetV3, create_supernet, sort_channels
from supernet.runtime import Runtime, detect_runtime, make_generators, set_threads
from supernet.space import SearchSpace, get_space, list_spaces
from supernet.train.config import PhaseConfig, TrainConfig
from supernet.train.data import load_run_dataset, write_dataset_record
from supernet.train.distill import soft_target_cross_entropy
from supernet.train.distributed import (
    all_gather_objects,
    all_reduce_mean,
    barrier,
    distributed_session,
    shard_map,
    wrap_ddp,
)
from supernet.train.evaluate import calibration_loader, evaluate_subnet
from supernet.train.rundir import (
    CHECKPOINT,
    DATASET_RECORD,
    check_run_dir,
    config_digest,
    prepare_run_dir,
    write_metrics,
)
from supernet.train.schedule import lr_at, phase_space

__all__ = ["TrainReporter", "TrainResult", "build_supernet", "checkpoint_metadata", "train"]

log = logging.getLogger(__name__)


class TrainReporter:
    """Hooks for progress display; the CLI subclasses it with a rich progress bar."""

    def on_removed(self, run_dir: Path, names: list[str]) -> None:
        """``force`` deleted these files of the old run (and of what was derived from it)."""

    def on_resume(self, phases: list[PhaseConfig], phase: int, epoch: int, step: int) -> None:
        """A resumed run continues at ``phases[phase]`` (0-based), 0-based ``epoch``, ``step``
        optimizer steps into it (``phase == len(phases)``: the run had finished)."""

    def on_epoch_start(self, phase: str, epoch: int, epochs: int, steps: int) -> None:
        """An epoch (0-based ``epoch`` of ``epochs``) of ``steps`` optimizer steps begins."""

    def on_step(self, loss: float, lr: float) -> None:
        """One step done: its mean loss over the sampled subnets and its learning rate."""

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        """The epoch's ``metrics.csv`` row, after its checkpoint is written."""


@dataclass
class TrainResult:
    """Where the run was written, its per-epoch metrics rows, and the trained supernet."""

    run_dir: Path
    metrics: list[dict[str, Any]]
    supernet: OFAMobileNetV3


def checkpoint_metadata(config: TrainConfig) -> dict[str, str]:
    """What a checkpoint must match to be resumed or evaluated with ``config`` (the library
    version is recorded by :func:`supernet.checkpoint.save_checkpoint` itself; another version
    only logs a warning)."""
    return {
        "kind": "supernet-train",
        "space": config.space,
        "preset": config.preset,
        "config_digest": config_digest(config),
    }


def build_supernet(config: TrainConfig, splits: DatasetSplits) -> tuple[SearchSpace, nn.Module]:
    """The search space (with the dataset's class count) and a fresh supernet for ``config``.

    Raises:
        ConfigError: when the dataset's channel count does not fit the space.
    """
    space = get_space(config.space, num_classes=splits.num_classes)
    if space.input_channels != splits.input_channels:
        fits = [n for n in list_spaces() if get_space(n).input_channels == splits.input_channels]
        raise ConfigError(
            f"space {space.name!r} takes {space.input_channels}-channel input, dataset "
            f"{config.dataset!r} has {splits.input_channels} channel(s); choose a space for "
            f"{splits.input_channels}-channel images (--set space=NAME: {', '.join(fits)})"
        )
    return space, create_supernet(space, dropout=config.dropout, norm=config.norm)


def _optimizer(model: nn.Module, config: TrainConfig, lr: float) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        # No weight decay on norm affine parameters and biases, nor (unless configured, as the
        # reference) on the kernel transformation matrices.
        exempt = "transforms" in name and not config.decay_kernel_transforms
        (no_decay if p.ndim <= 1 or exempt else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=config.momentum, nesterov=config.nesterov)


def _teacher(model: OFAMobileNetV3, norm: str = "eval") -> nn.Module:
    """A frozen copy of the largest subnet. ``norm="batch"``: its batch norms stay in train mode
    (batch statistics, as the reference's ``teacher_model.train()``), dropout stays off."""
    teacher = model.get_subnet(model.space.largest()).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    if norm == "batch":
        for m in teacher.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()
    return teacher


class _StopSignal:
    """SIGINT/SIGTERM set a flag that the loop checks after each step (a second SIGINT raises
    ``KeyboardInterrupt`` at once). Handlers are installed only in the main thread."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("signal %d: stopping after this step and writing a checkpoint", signum)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    reporter: TrainReporter | None = None,
) -> TrainResult:
    """Train a supernet by progressive shrinking; checkpoint after every epoch (and every
    ``config.checkpoint_every`` steps).

    Resuming restores phase, epoch, step, weights, teacher, optimizer and every RNG, so a resumed
    run computes the same weights as an uninterrupted one (same device, thread and process count).
    Under ``torchrun`` (``WORLD_SIZE`` > 1) the supernet trains with DistributedDataParallel: every
    rank samples the same subnets, takes its share of each global batch, and rank 0 alone writes.
    SIGINT/SIGTERM stop after the current step with a checkpoint written.

    Raises:
        RunDirError: run directory conflicts (see :func:`prepare_run_dir`).
        CheckpointError: unreadable checkpoint, or one of another space/preset/config.
        DataNotFoundError: the dataset is not installed.
        ConfigError: the batch size is not divisible by the number of processes.
        SupernetError: a non-finite loss (names phase, epoch and step; the last good checkpoint
            is kept).
        TrainingInterrupted: after SIGINT/SIGTERM, once the checkpoint is written.
    """
    rt: Runtime = detect_runtime(config.device, amp=config.amp)
    reporter = reporter if rt.is_main and reporter is not None else TrainReporter()
    with distributed_session(rt), _StopSignal() as stop:
        return _train(
            config, Path(run_dir), rt, stop, resume=resume, force=force, reporter=reporter
        )


def _train(
    config: TrainConfig,
    run_dir: Path,
    rt: Runtime,
    stop: _StopSignal,
    *,
    resume: bool,
    force: bool,
    reporter: TrainReporter,
) -> TrainResult:
    # Nothing is written before the run directory, the dataset and a resumed checkpoint are
    # known good: a failed start leaves no half-made run behind to block the retry.
    if rt.is_main:
        check_run_dir(run_dir, config, resume=resume, force=force)
    set_threads(config.threads)
    fmt = torch.channels_last if config.channels_last else torch.contiguous_format
    # a forced run ignores the old run's dataset record (it is removed below)
    splits = load_run_dataset(config, None if force else run_dir)
    ckpt_path = run_dir / CHECKPOINT
    payload = None
    if resume:
        payload, _ = load_checkpoint(ckpt_path, expect=checkpoint_metadata(config))
    if rt.is_main:
        run_dir, removed = prepare_run_dir(run_dir, config, resume=resume, force=force)
        if removed:
            reporter.on_removed(run_dir, removed)
        for stale in run_dir.glob(f".{CHECKPOINT}.*.tmp"):  # a save cut short by SIGKILL
            stale.unlink()
        if not (run_dir / DATASET_RECORD).is_file():
            write_dataset_record(run_dir, config, splits)
    barrier()
    # Weight init and dropout draw from torch's global generator: seeded once here, saved below.
    torch.manual_seed(config.seed)
    space, model = build_supernet(config, splits)
    # Under DDP the weights stay contiguous (DDP's gradient buckets follow the parameter layout
    # while gradients of transformed kernels come back contiguous); inputs are channels_last.
    model = model.to(rt.device, memory_format=torch.contiguous_format if rt.is_distributed else fmt)
    if rt.is_distributed:  # the same weights everywhere (DDP broadcasts them), own dropout masks
        torch.manual_seed(config.seed + 1_000_003 * rt.rank)
    net = wrap_ddp(model, rt)
    np_rng, gen = make_generators(config.seed)  # the same on every rank: same subnets, same order
    calib = calibration_loader(splits.train, config.calib_images, config.eval_batch_size, 0)
    val = BatchLoader(splits.val, config.eval_batch_size, shuffle=False, augment=False,
                      limit=config.val_images)  # fmt: skip
    scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp_dtype == torch.float16)
    phase_index, epoch0, step0, metrics, done = 0, 0, 0, [], {"loss_sum": 0.0, "seconds": 0.0}
    teacher: nn.Module | None = None
    opt_state = None
    if payload is not None:
        model.load_state_dict(payload["model"])
        if payload["teacher"] is not None:
            teacher = _teacher(model, config.teacher_norm)
            teacher.load_state_dict(payload["teacher"])
        phase_index, epoch0, metrics = payload["phase_index"], payload["epoch"], payload["metrics"]
        step0, done = payload.get("step", 0), payload.get("epoch_progress", done)
        opt_state, _ = payload["optimizer"], scaler.load_state_dict(payload["scaler"])
        np_rng = restore_numpy_rng(payload["rng"]["numpy"])
        gen = restore_torch_rng(payload["rng"]["torch"])
        states = payload["rng"]["torch_global"]
        states = states if isinstance(states, list) else [states]
        if len(states) == rt.world_size:  # else (another process count): keep the fresh seed
            torch.set_rng_state(states[rt.rank])
        log.info("resuming %s at phase %d epoch %d step %d", run_dir, phase_index, epoch0, step0)
        reporter.on_resume(config.phases, phase_index, epoch0, step0)

    def save(next_phase: int, next_epoch: int, optimizer: torch.optim.Optimizer | None,
             *, step: int = 0, gen_state: torch.Tensor | None = None) -> None:  # fmt: skip
        global_states = all_gather_objects(torch.get_rng_state())  # a collective: every rank
        if rt.is_main:
            payload = {
                "model": model.state_dict(),
                "teacher": None if teacher is None else teacher.state_dict(),
                "optimizer": None if optimizer is None else optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "phase_index": next_phase,
                "epoch": next_epoch,
                "step": step,  # optimizer steps done in the epoch; 0 at an epoch boundary
                "epoch_progress": dict(done),
                "metrics": metrics,
                "rng": {
                    "numpy": numpy_rng_state(np_rng),
                    # mid-epoch: the loader's generator as the epoch began (the epoch is replayed)
                    "torch": torch_rng_state(gen) if gen_state is None else gen_state,
                    "torch_global": global_states if rt.is_distributed else global_states[0],
                },
            }
            save_checkpoint(ckpt_path, payload, metadata=checkpoint_metadata(config))
            write_metrics(run_dir, metrics)
        barrier()

    world = (rt.rank, rt.world_size)
    for pi in range(phase_index, len(config.phases)):
        phase: PhaseConfig = config.phases[pi]
        sub = phase_space(space, phase)
        if opt_state is None and phase.sort_channels and not (pi == phase_index and step0):
            # Stage-wise: channels stay within the widths of the expand ratios trained so far.
            trained = {e for p in config.phases[:pi] for e in phase_space(space, p).expand_ratios}
            sort_channels(model, tuple(sorted(trained)))
        if phase.distill and teacher is None and config.teacher == "frozen":
            teacher = _teacher(model, config.teacher_norm)
        optimizer = _optimizer(model, config, phase.lr)
        if opt_state is not None:
            optimizer.load_state_dict(opt_state)
            opt_state = None
        loader = BatchLoader(splits.train, config.batch_size, shuffle=True, augment=config.augment,
                             generator=gen, drop_last=True, shard=world,
                             limit=config.train_images(phase))  # fmt: skip
        total = phase.epochs * len(loader)
        warmup = round(phase.warmup_epochs * len(loader))
        for epoch in range(epoch0 if pi == phase_index else 0, phase.epochs):
            start_step = step0 if (pi, epoch) == (phase_index, epoch0) else 0
            if not start_step:
                done = {"loss_sum": 0.0, "seconds": 0.0}
            reporter.on_epoch_start(phase.name, epoch, phase.epochs, len(loader))
            net.train()
            start, gen_state = time.perf_counter(), torch_rng_state(gen)
            for step, (x, y) in enumerate(loader.iterate(start_step), start=start_step):
                lr = lr_at(epoch * len(loader) + step, total, phase.lr, warmup, config.warmup)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                resolution = int(np_rng.choice(sub.resolutions))
                batch = _ResizedBatch(x, rt.device, fmt)
                step_loss = _step(net, model, teacher, phase, sub, config, rt, scaler, optimizer,
                                  batch, y.to(rt.device), resolution, np_rng)  # fmt: skip
                step_loss, stop_flag = all_reduce_mean([step_loss, float(stop.requested)], rt)
                if not math.isfinite(step_loss):
                    raise SupernetError(
                        f"non-finite loss {step_loss} in phase {phase.name!r}, epoch {epoch + 1}, "
                        f"step {step + 1}; the last good checkpoint is kept in {ckpt_path}"
                    )
                scaler.step(optimizer)
                scaler.update()
                done["loss_sum"] += step_loss
                every = config.checkpoint_every
                if step + 1 < len(loader) and (stop_flag or (every and (step + 1) % every == 0)):
                    done["seconds"] += time.perf_counter() - start
                    start = time.perf_counter()
                    save(pi, epoch, optimizer, step=step + 1, gen_state=gen_state)
                    if stop_flag:
                        raise TrainingInterrupted(
                            f"stopped in phase {phase.name!r}, epoch {epoch + 1}, step {step + 1}; "
                            f"checkpoint written to {ckpt_path}; continue with --resume"
                        )
                reporter.on_step(step_loss, lr)
            done["seconds"] += time.perf_counter() - start
            row: dict[str, Any] = {
                "phase": phase.name,
                "epoch": epoch + 1,
                "train_loss": round(done["loss_sum"] / max(len(loader), 1), 5),
                "lr_end": lr_at(
                    min((epoch + 1) * len(loader), total) - 1,
                    total,
                    phase.lr,
                    warmup,
                    config.warmup,
                ),
                "train_seconds": round(done["seconds"], 2),
            }
            extremes = [("largest", sub.largest()), ("smallest", sub.smallest())]
            scores = shard_map(lambda item: evaluate_subnet(  # split across ranks
                model, item[1], calib=calib, data=val, device=rt.device,
                channels_last=config.channels_last)[0].accuracy, extremes)  # fmt: skip
            for (label, _), score in zip(extremes, scores, strict=True):
                row[f"val_acc_{label}"] = round(score, 3)
            metrics.append(row)
            last = epoch + 1 == phase.epochs
            save(pi + 1 if last else pi, 0 if last else epoch + 1, None if last else optimizer)
            reporter.on_epoch_end(row)
            if all_reduce_mean([float(stop.requested)], rt)[0]:  # every rank: a collective
                raise TrainingInterrupted(
                    f"stopped after phase {phase.name!r}, epoch {epoch + 1}; checkpoint written "
                    f"to {ckpt_path}; continue with --resume"
                )
    model.set_active(space.largest())
    return TrainResult(run_dir, metrics, model)


class _ResizedBatch:
    """One step's images at each resolution a subnet of the step asks for, resized once each."""

    def __init__(self, images: torch.Tensor, device: torch.device, fmt: torch.memory_format):
        self.images, self.device, self.fmt = images, device, fmt
        self._cache: dict[int, torch.Tensor] = {}

    def at(self, resolution: int) -> torch.Tensor:
        """The images ``[B, C, resolution, resolution]`` on the device, in the run's layout."""
        if resolution not in self._cache:
            x = resize(self.images, resolution)
            self._cache[resolution] = x.to(self.device, memory_format=self.fmt)
        return self._cache[resolution]


def _step(
    net: nn.Module,
    model: OFAMobileNetV3,
    teacher: nn.Module | None,
    phase: PhaseConfig,
    sub: SearchSpace,
    config: TrainConfig,
    rt: Runtime,
    scaler: torch.amp.GradScaler,
    optimizer: torch.optim.Optimizer,
    batch: _ResizedBatch,
    y: torch.Tensor,
    resolution: int,
    np_rng: np.random.Generator,
) -> float:
    """One progressive-shrinking step's forward/backward passes (gradients accumulated over the
    sampled subnets; under DDP they are averaged across ranks in the last backward pass).
    ``resolution`` is the step's random resolution; with ``sandwich_resolution: extremes`` the
    sandwich's largest and smallest subnets keep their own. Returns the step's mean loss over
    the subnets."""
    fixed = [sub.largest(), sub.smallest()] if phase.sandwich else []
    extremes = phase.sandwich and config.sandwich_resolution == "extremes"
    soft = None
    if phase.distill and teacher is not None:
        teacher_res = fixed[0].resolution if extremes else resolution
        with torch.no_grad(), rt.autocast():
            soft = F.softmax(teacher(batch.at(teacher_res)).float(), dim=1)
    optimizer.zero_grad(set_to_none=True)
    step_loss = 0.0
    for i in range(phase.subnets_per_step):
        arch = fixed[i] if i < len(fixed) else sub.sample(np_rng)
        if not (extremes and i < len(fixed)):
            arch = replace(arch, resolution=resolution)
        model.set_active(arch)
        last = i + 1 == phase.subnets_per_step
        sync = contextlib.nullcontext() if last or net is model else net.no_sync()  # type: ignore[operator]
        with sync:
            with rt.autocast():
                logits = net(batch.at(arch.resolution)).float()
            loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
            if soft is not None:
                loss = loss + config.kd_ratio * soft_target_cross_entropy(logits, soft)
            elif phase.distill and config.teacher == "inplace":  # i == 0: the largest
                soft = F.softmax(logits.detach(), dim=1)
            scaler.scale(loss).backward()
        step_loss += loss.item() / phase.subnets_per_step
    return step_loss
