"""Measured training memory: the bytes autograd really keeps in one training step.

TinyTL's saving is an accounting claim (Cai et al., NeurIPS'20, arXiv 2007.11622, Sec. 3.1): a
frozen layer needs no stored input, ReLU needs one bit. Plain PyTorch keeps far more (a conv's input
whenever any gradient flows through it), so the saving is measured here, not assumed:

- saved activations: every tensor autograd saves during the forward pass, seen through
  ``torch.autograd.graph.saved_tensors_hooks`` (built-in ops and ``ctx.save_for_backward`` of
  custom functions alike), de-duplicated by storage (a tensor saved by two ops, or two views of one
  tensor, count once: autograd keeps one storage). Storages of the model's parameters and buffers
  are excluded — they are parameter memory, counted apart. Tensors saved by the loss are not
  counted (the forward pass of the model only).
- parameter storage: the model's parameters and buffers as stored (an 8-bit frozen weight counts
  its uint8 indices and float32 codebook).
- gradients after ``backward()`` and optimizer state after one ``step()``.
- the real peak of the step (``peak_step_bytes``): the most bytes the step's own allocations
  (forward, loss, backward, optimizer step; not the model or the input batch, which exist
  before) held at once — the CUDA caching allocator's peak (``torch.cuda.max_memory_allocated``)
  on a CUDA device; on the CPU the running sum of the allocation and free events that
  ``torch.profiler`` records with ``profile_memory=True``. Unlike the other numbers it is a peak
  in time, not a sum of what is kept.

Compare ``saved_activation_bytes`` with
:meth:`~supernet.transfer.memory.MemoryReport.saved_total_bytes` (``B · saved_bytes_full +
saved_fixed_bytes_full``; or ``accounting="paper"``): both are sums of what layers save, not the
peak ``A`` of the paper's accounting, which also holds one layer's working tensors.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from supernet.errors import ConfigError
from supernet.transfer.memory import OPTIMIZERS, unique_storage_bytes

if TYPE_CHECKING:
    from supernet.transfer.memory import MemoryReport

__all__ = ["MeasuredMemory", "compare_saved_bytes", "measure_training_memory"]


class _PeakMeter:
    """The peak of the bytes allocated inside the ``with`` block, above its start (see the
    module docstring for the sources)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak, self.source = device, None, "none"
        self._prof: torch.profiler.profile | None = None

    def __enter__(self) -> _PeakMeter:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.device.type == "cpu":
            acts = [torch.profiler.ProfilerActivity.CPU]
            self._prof = torch.profiler.profile(activities=acts, profile_memory=True)
            self._prof.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self._start
            self.source = "cuda allocator"
        elif self._prof is not None:
            self._prof.__exit__(*exc)
            if exc[0] is None:
                self.peak, self.source = self._profiler_peak(self._prof), "profiler memory events"

    @staticmethod
    def _profiler_peak(prof: torch.profiler.profile) -> int | None:
        results = getattr(getattr(prof, "profiler", None), "kineto_results", None)
        if results is None:  # an unknown profiler build: no peak rather than a wrong one
            return None
        events = [e for e in results.events() if e.name() == "[memory]"]
        current = peak = 0
        for e in sorted(events, key=lambda e: e.start_ns()):
            current += e.nbytes()
            peak = max(peak, current)
        return peak


@dataclass(frozen=True)
class MeasuredMemory:
    """Bytes held in one measured training step of ``batch_size`` images (module docstring).

    Attributes:
        saved_activation_bytes: distinct storages autograd saved in the forward pass, parameters
            and buffers excluded.
        saved_tensor_count: tensors packed by autograd (before de-duplication, parameters
            included).
        param_storage_bytes: parameters and buffers.
        grad_bytes: ``.grad`` of the trainable parameters after backward.
        optimizer_bytes: optimizer state after one step.
        loss: the step's loss (before the update).
        peak_step_bytes: the real peak of the step's own allocations (module docstring);
            ``None`` where no source was available.
        peak_source: ``"cuda allocator"``, ``"profiler memory events"`` or ``"none"``.
    """

    batch_size: int
    optimizer: str
    saved_activation_bytes: int
    saved_tensor_count: int
    param_storage_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    loss: float
    peak_step_bytes: int | None = None
    peak_source: str = "none"

    @property
    def saved_activation_bytes_per_image(self) -> float:
        """``saved_activation_bytes / batch_size``."""
        return self.saved_activation_bytes / self.batch_size

    @property
    def total_bytes(self) -> int:
        """Saved activations + parameter storage + gradients + optimizer state."""
        return (self.saved_activation_bytes + self.param_storage_bytes + self.grad_bytes
                + self.optimizer_bytes)  # fmt: skip


def _make_optimizer(name: str, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def measure_training_memory(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    optimizer: str = "adam",
    lr: float = 1e-3,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> MeasuredMemory:
    """Run one real training step (forward, backward, optimizer step) on a deep copy of ``model``
    and measure what it holds; ``model`` itself — weights, gradients, buffers, modes — is not
    changed. The copy keeps the model's modes (train/eval), ``requires_grad`` flags and module
    classes, so the step is the one training would run.

    Shapes: ``images [B, C, H, W]`` (on the model's device), ``labels [B]`` class indices.

    Args:
        optimizer: one of :data:`~supernet.transfer.memory.OPTIMIZERS` (``"sgd"``: momentum 0.9).
        lr: learning rate of that step.
        criterion: ``(logits, labels) -> loss``; default cross-entropy.

    Raises:
        ConfigError: ``images`` is not 4-D or ``labels`` does not match its batch, an unknown
            ``optimizer``, or no parameter of ``model`` trains.

    Reference: TinyTL (Cai et al., NeurIPS'20, arXiv 2007.11622), Sec. 3.1 and Fig. 1 (what
    training memory is made of).
    """
    if images.dim() != 4 or labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise ConfigError(
            f"images {tuple(images.shape)} and labels {tuple(labels.shape)} must be [B, C, H, W] "
            "and [B] with the same B"
        )
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer = {optimizer!r} is not allowed; choose from {OPTIMIZERS}")
    work = copy.deepcopy(model)
    trainable = [p for p in work.parameters() if p.requires_grad]
    if not trainable:
        raise ConfigError("no parameter of the model trains (requires_grad is False everywhere)")
    work.zero_grad(set_to_none=True)

    saved: dict[tuple[torch.device, int], int] = {}
    count = 0
    meter = _PeakMeter(images.device)

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal count
        count += 1
        storage = t.untyped_storage()
        saved[(t.device, storage.data_ptr())] = storage.nbytes()
        return t  # autograd keeps the tensor itself: its storage stays alive, its key unique

    step = _make_optimizer(optimizer, trainable, lr)
    with meter:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            logits = work(images)
        loss = (criterion or F.cross_entropy)(logits, labels)
        loss.backward()
        step.step()
    own = {(t.device, t.untyped_storage().data_ptr()) for t in [*work.parameters(),
                                                                 *work.buffers()]}  # fmt: skip
    activation_bytes = sum(n for key, n in saved.items() if key not in own)
    grad_bytes = unique_storage_bytes(p.grad for p in trainable)
    state = [t for s in step.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    return MeasuredMemory(
        batch_size=images.shape[0],
        optimizer=optimizer,
        saved_activation_bytes=activation_bytes,
        saved_tensor_count=count,
        param_storage_bytes=unique_storage_bytes([*work.parameters(), *work.buffers()]),
        grad_bytes=grad_bytes,
        optimizer_bytes=unique_storage_bytes(state),
        loss=float(loss.detach()),
        peak_step_bytes=meter.peak,
        peak_source=meter.source,
    )


def compare_saved_bytes(report: MemoryReport, measured: MeasuredMemory) -> dict[str, float]:
    """Modelled vs measured saved-for-backward bytes at the measured batch size.

    Returns bytes ``paper_saved_bytes``, ``full_saved_bytes``, ``measured_saved_bytes`` and the
    ratios ``measured_over_full``, ``measured_over_paper`` (``inf`` where the model says 0 and
    something was measured, 1.0 where both are 0).
    """
    b = measured.batch_size
    paper = report.saved_total_bytes(b, accounting="paper")
    full = report.saved_total_bytes(b, accounting="full")
    got = measured.saved_activation_bytes

    def ratio(model_bytes: int) -> float:
        return got / model_bytes if model_bytes else (1.0 if got == 0 else float("inf"))

    return {
        "paper_saved_bytes": float(paper),
        "full_saved_bytes": float(full),
        "measured_saved_bytes": float(got),
        "measured_over_full": ratio(full),
        "measured_over_paper": ratio(paper),
    }
