"""The ProxylessNAS search loop: weight steps on the train split, α steps on the validation
split, checkpointed so that a resumed search computes exactly what an uninterrupted one does.

Per epoch: ``warmup_epochs`` weights-only epochs (one path per slot drawn from ``softmax(α)``,
uniform while α is at its init), then ``search_epochs`` where every ``arch_update_every``-th
weight step is followed by one α step (:func:`arch_step`) on a random validation batch. The
derived architecture is the argmax path per slot.

Determinism: the train loader's generator (its state at the epoch's start is saved, the epoch
is replayed up to the step), a path-sampling generator, a validation-batch generator and torch's
global generator (dropout) are all in the checkpoint, with both optimizers and the α history.

Reference: ProxylessNAS (Cai, Zhu, Han; ICLR'19; arXiv 1812.00332), Sec. 3.2-3.3; released
code ``search/nas_manager.py`` (``warm_up``, ``train``, ``gradient_step``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from supernet.checkpoint import load_checkpoint, save_checkpoint
from supernet.checkpoint_rng import restore_torch_rng, torch_rng_state
from supernet.data import BatchLoader, DatasetSplits, resize
from supernet.errors import SupernetError, TrainingInterrupted
from supernet.nas.config import ProxylessConfig
from supernet.nas.latency import LatencyModel, latency_loss
from supernet.nas.network import ProxylessSupernet
from supernet.runtime import detect_runtime
from supernet.space import ArchConfig, get_space
from supernet.train.bn import recalibrate_bn
from supernet.train.evaluate import accuracy, calibration_loader
from supernet.train.schedule import lr_at

__all__ = ["SEARCH_CHECKPOINT", "SearchReporter", "SearchResult", "arch_step", "search"]

SEARCH_CHECKPOINT = "search.pt"


class SearchReporter:
    """Progress hooks (the CLI shows a rich bar); every method does nothing by default."""

    def on_epoch_start(self, phase: str, epoch: int, epochs: int, steps: int, start: int) -> None:
        """Epoch ``epoch`` (0-based) of ``epochs`` begins (at step ``start`` when resumed)."""

    def on_step(self, loss: float, expected_ms: float | None) -> None:
        """One weight step done (``expected_ms``: E[LAT] after an α step in it, else None)."""

    def on_epoch_end(self, row: dict[str, Any]) -> None:
        """The epoch's metrics row."""


@dataclass
class SearchResult:
    """The derived architecture and how the search got there.

    Attributes:
        config: the derived arch config (argmax path per slot).
        expected_latency_ms: E[LAT] under ``softmax(α)`` at the end, ms.
        predicted_latency_ms: the latency table's prediction for ``config``, ms.
        history: ``[T, num_slots, num_ops]`` path probabilities after the warm-up and after
            each α step (columns: :func:`~supernet.nas.network.candidate_ops`).
        metrics: one row per epoch.
        seconds: wall time of the search (all sessions together).
        network: the over-parameterized network with its final α.
    """

    config: ArchConfig
    expected_latency_ms: float
    predicted_latency_ms: float
    history: torch.Tensor
    metrics: list[dict[str, Any]]
    seconds: float
    network: ProxylessSupernet


def arch_step(
    net: ProxylessSupernet,
    x: torch.Tensor,
    y: torch.Tensor,
    latency: LatencyModel,
    config: ProxylessConfig,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> tuple[float, float]:
    """One α update (reference ``gradient_step``, mode ``"two"``): two paths per slot, the
    loss with the latency term over the sampled paths' probabilities, the binary-gate estimate
    of α's gradient, an optimizer step, and the rescaling of the two sampled α.

    Shapes: ``x`` ``[B, C, R, R]``, ``y`` ``[B]``. Returns ``(loss, E[LAT] in ms of the step)``.

    Reference: ProxylessNAS, arXiv 1812.00332, Sec. 3.2 (Eq. 5) and 3.3 (Eq. 4, 7).
    """
    net.sample_two(generator)
    logits = net(x)
    ce = F.cross_entropy(logits, y)
    expected = latency.expected_ms(net.probs_matrix(sampled=True))
    loss = latency_loss(ce, expected, config.target_latency_ms, kind=config.latency_loss,
                        lam=config.latency_lambda, alpha=config.latency_alpha,
                        beta=config.latency_beta)  # fmt: skip
    net.zero_grad(set_to_none=True)
    loss.backward()
    for m in net.blocks:
        m.set_alpha_grad()
    optimizer.step()
    for m in net.blocks:
        m.rescale_alpha()
    net.zero_grad(set_to_none=True)  # the weights are not trained by the α step
    return float(loss.detach()), float(expected.detach())


def _metadata(config: ProxylessConfig) -> dict[str, Any]:
    return {"kind": "proxyless-search", "config": config.to_dict()}


def search(
    config: ProxylessConfig,
    splits: DatasetSplits,
    latency: LatencyModel,
    run_dir: str | Path,
    *,
    resume: bool = False,
    reporter: SearchReporter | None = None,
    stop_after_steps: int | None = None,
) -> SearchResult:
    """Run (or resume) the search; checkpoint to ``run_dir/search.pt`` after every epoch and
    every ``config.checkpoint_every`` steps.

    Args:
        stop_after_steps: stop once this many weight steps are done in all (counting those
            before a resume), after writing the checkpoint (tests, time-boxed runs).

    Raises:
        ConfigError: the target latency is outside the space's bounds (both named).
        CheckpointError: ``resume`` with a missing, damaged or other run's checkpoint.
        SupernetError: a non-finite loss (names epoch and step).
        TrainingInterrupted: ``stop_after_steps`` reached (the checkpoint is written).
    """
    latency.check_target(config.target_latency_ms)
    run_dir, reporter = Path(run_dir), reporter or SearchReporter()
    run_dir.mkdir(parents=True, exist_ok=True)
    device = detect_runtime(config.device, amp=False).device
    space = get_space(config.space, num_classes=splits.num_classes)
    resolution = config.search_resolution()
    torch.manual_seed(config.seed)
    net = ProxylessSupernet(
        space,
        dropout=config.dropout,
        alpha_init_std=config.alpha_init_std,
        generator=torch.Generator().manual_seed(config.seed),
    ).to(device)
    w_opt = torch.optim.SGD(
        net.weight_parameters(),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.momentum > 0,
        weight_decay=config.weight_decay,
    )
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=config.arch_lr, betas=(0.0, 0.999))
    data_gen = torch.Generator().manual_seed(config.seed)
    path_gen = torch.Generator().manual_seed(config.seed + 1)
    val_gen = torch.Generator().manual_seed(config.seed + 2)
    loader = BatchLoader(splits.train, config.batch_size, shuffle=True, augment=True,
                         generator=data_gen, drop_last=True, limit=config.image_limit)  # fmt: skip
    n_val = min(len(splits.val), config.image_limit or len(splits.val))
    val_eval = BatchLoader(splits.val, config.eval_batch_size, shuffle=False, augment=False,
                           limit=n_val)  # fmt: skip
    calib = calibration_loader(splits.train, min(1000, loader.num_samples),
                               config.eval_batch_size, config.seed)  # fmt: skip
    steps, epochs = len(loader), config.warmup_epochs + config.search_epochs
    if steps == 0:
        raise SupernetError(f"no full batch of {config.batch_size} in {loader.num_samples} images")
    epoch0, step0, metrics, history, seconds = 0, 0, [], [], 0.0
    progress = {"loss": 0.0, "arch_loss": 0.0, "arch_steps": 0}
    ckpt = run_dir / SEARCH_CHECKPOINT
    if resume:
        p, _ = load_checkpoint(ckpt, expect=_metadata(config))
        net.load_state_dict(p["model"])
        w_opt.load_state_dict(p["weight_optimizer"])
        a_opt.load_state_dict(p["arch_optimizer"])
        epoch0, step0, metrics, seconds = p["epoch"], p["step"], p["metrics"], p["seconds"]
        history, progress = list(p["history"]), dict(p["progress"])
        data_gen.set_state(p["rng"]["data_epoch_start"])
        path_gen = restore_torch_rng(p["rng"]["path"])
        val_gen = restore_torch_rng(p["rng"]["val"])
        torch.set_rng_state(p["rng"]["torch_global"])

    def save(epoch: int, step: int, epoch_start: torch.Tensor) -> None:
        payload = {
            "model": net.state_dict(), "weight_optimizer": w_opt.state_dict(),
            "arch_optimizer": a_opt.state_dict(), "epoch": epoch, "step": step,
            "metrics": metrics, "history": [h.clone() for h in history], "progress": progress,
            "seconds": seconds + time.perf_counter() - started,
            "rng": {"data_epoch_start": epoch_start, "path": torch_rng_state(path_gen),
                    "val": torch_rng_state(val_gen), "torch_global": torch.get_rng_state()},
        }  # fmt: skip
        save_checkpoint(ckpt, payload, metadata=_metadata(config))

    started = time.perf_counter()
    done = epoch0 * steps + step0
    for epoch in range(epoch0, epochs):
        searching = epoch >= config.warmup_epochs
        phase_epoch = epoch - config.warmup_epochs if searching else epoch
        phase_steps = steps * (config.search_epochs if searching else config.warmup_epochs)
        if searching and not history:
            history.append(net.probs_matrix().detach().float().cpu())  # α at the start
        start = step0 if epoch == epoch0 else 0
        if not start:
            progress = {"loss": 0.0, "arch_loss": 0.0, "arch_steps": 0}
        epoch_start = torch_rng_state(data_gen)
        reporter.on_epoch_start("search" if searching else "warm-up", epoch, epochs, steps, start)
        net.train()
        for step, (x, y) in enumerate(loader.iterate(start), start=start):
            lr = lr_at(phase_epoch * steps + step, phase_steps, config.lr)
            for group in w_opt.param_groups:
                group["lr"] = lr
            x, y = resize(x, resolution).to(device), y.to(device)
            net.sample_one(path_gen)
            loss = F.cross_entropy(net(x), y, label_smoothing=config.label_smoothing)
            if not math.isfinite(float(loss.detach())):
                raise SupernetError(f"non-finite loss {float(loss)} in epoch {epoch + 1}, step "
                                    f"{step + 1}; the last good checkpoint is {ckpt}")  # fmt: skip
            w_opt.zero_grad(set_to_none=True)
            loss.backward()
            w_opt.step()
            progress["loss"] += float(loss.detach())
            expected = None
            if searching and (step + 1) % config.arch_update_every == 0:
                vx, vy = _val_batch(splits, n_val, config.batch_size, val_gen)
                arch_loss, expected = arch_step(net, resize(vx, resolution).to(device),
                                                vy.to(device), latency, config, a_opt,
                                                path_gen)  # fmt: skip
                progress["arch_loss"] += arch_loss
                progress["arch_steps"] += 1
                history.append(net.probs_matrix().detach().float().cpu())
            done += 1
            reporter.on_step(float(loss.detach()), expected)
            last = step + 1 == steps
            every = config.checkpoint_every
            stop = stop_after_steps is not None and done >= stop_after_steps
            if not last and (stop or (every and (step + 1) % every == 0)):
                save(epoch, step + 1, epoch_start)
                if stop:
                    raise TrainingInterrupted(f"search stopped after {done} steps; checkpoint "
                                              f"{ckpt}; continue with resume")  # fmt: skip
        net.eval()
        row = _epoch_row(net, latency, (val_eval, calib), resolution, device, epoch, searching,
                         steps, progress)  # fmt: skip
        metrics.append(row)
        save(epoch + 1, 0, torch_rng_state(data_gen))
        reporter.on_epoch_end(row)
        if stop_after_steps is not None and done >= stop_after_steps and epoch + 1 < epochs:
            raise TrainingInterrupted(f"search stopped after {done} steps; checkpoint {ckpt}; "
                                      "continue with resume")  # fmt: skip
    derived = net.derive_config(resolution)
    with torch.no_grad():
        expected_ms = float(latency.expected_ms(net.probs_matrix()))
    one_hot = _one_hot(net)
    return SearchResult(
        config=derived,
        expected_latency_ms=expected_ms,
        predicted_latency_ms=float(latency.expected_ms(one_hot)),
        history=torch.stack(history) if history else net.probs_matrix().detach()[None],
        metrics=metrics,
        seconds=seconds + time.perf_counter() - started,
        network=net,
    )


def _val_batch(
    splits: DatasetSplits, n_val: int, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch (without replacement) of the first ``n_val`` validation images."""
    idx = torch.randperm(n_val, generator=generator)[: min(batch_size, n_val)]
    loader = BatchLoader(splits.val.subset(idx), len(idx), shuffle=False, augment=False)
    return next(iter(loader))


def _one_hot(net: ProxylessSupernet) -> torch.Tensor:
    """``[num_slots, num_ops]`` float64 with a 1 at each slot's argmax op."""
    out = torch.zeros(len(net.blocks), len(net.all_ops), dtype=torch.float64)
    for s, (m, cols) in enumerate(zip(net.blocks, net.columns, strict=True)):
        out[s, cols[m.chosen()]] = 1.0
    return out


def _epoch_row(net, latency, loaders, resolution, device, epoch, searching, steps, progress):
    """Metrics of one epoch; validation accuracy of the argmax path after re-estimating its BN
    statistics on up to 1,000 training images (as Once-for-All scores a subnet: every
    candidate's running statistics were gathered behind other paths). Training uses batch
    statistics, so this changes nothing it computes."""
    val_eval, calib = loaders
    for m in net.blocks:
        m.active, m.inactive = m.chosen(), None
    recalibrate_bn(net, (resize(x, resolution).to(device) for x, _ in calib))
    acc, _, _ = accuracy(net, val_eval, resolution, device)
    with torch.no_grad():
        expected = float(latency.expected_ms(net.probs_matrix()))
    n_arch = progress["arch_steps"]
    return {
        "epoch": epoch + 1,
        "phase": "search" if searching else "warm-up",
        "train_loss": round(progress["loss"] / steps, 5),
        "arch_loss": round(progress["arch_loss"] / n_arch, 5) if n_arch else None,
        "expected_latency_ms": round(expected, 5),
        "argmax_latency_ms": round(float(latency.expected_ms(_one_hot(net))), 5),
        "val_acc_argmax": round(acc, 3),
    }
