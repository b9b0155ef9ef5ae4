"""Training memory of a transfer model: a TinyTL-style accounting, and a full accounting beside it.

Three accountings exist; none of the two here is the one behind TinyTL's tables:

- ``accounting="paper"`` (the name is kept for compatibility): this library's reading of the
  paper's text, below. It differs from the released profiler: it keeps the input of every block
  with a lite residual and the main branch's output while the branch runs, and it counts ReLU
  masks only where backward passes through.
- ``"full"``: what this PyTorch implementation holds (below).
- The **reference accounting** — the released profiler's rules exactly, which reproduce the
  paper's numbers on ProxylessNAS-Mobile — is :mod:`supernet.transfer.memory_reference`.

**TinyTL-style ("paper") accounting** (TinyTL, Cai, Gan, Zhu, Han, NeurIPS'20, arXiv 2007.11622:
Fig. 1 — training memory is parameters plus activations, and activations dominate; Sec. 3.1,
Eq. 1-2 — what backward needs; Sec. 4.1 — frozen weights counted at 8 bits). For batch size ``B``:
``memory(B) = B · A + P``.

- ``P``: 4 bytes per trainable and 1 byte per frozen parameter; no gradient or optimizer buffers.
- ``A`` (bytes per image): the peak, over the layers in forward order, of the layer's working bytes
  + the bytes saved for backward by the layers before it + the input of the enclosing residual
  block (added even where the working bytes hold the same tensor, as the paper's released
  profiler does; the full accounting counts each tensor once). What a layer saves (32-bit
  activations):

  - conv / linear / norm: its input, if its weight (γ for a norm) trains — the weight gradient is
    ``input^T · grad_out``; a bias gradient needs ``grad_out`` only (Sec. 3.1);
  - ReLU / ReLU6: a 1-bit mask per element, whenever backward passes through it (its input needs a
    gradient: some trainable parameter lies upstream of it);
  - sigmoid / h-swish / h-sigmoid: the input, whenever backward passes through;
  - pooling, upsampling, dropout, flatten, residual adds: nothing.

  Squeeze-and-excitation is accounted for op by op (global mean, reduce conv, ReLU, expand conv,
  h-sigmoid gate, ``x · gate``): the product saves ``x`` when the gate needs a gradient and the gate
  when ``x`` does. Working bytes follow the paper's released profiler: a conv holds its input and
  its output (a grouped conv's output / groups: computed in place group by group), a linear layer
  its input and output, a norm or an element-wise op works in place (its input only). Kept alive
  besides: the input of a residual MBConv block (the paper's residual input); the input of a block
  with a lite residual branch (Sec. 3.2), while the main branch runs and, with the main branch's
  output, while the branch runs; the input of squeeze-and-excitation until the gate multiplies it.

**Full accounting** — what this PyTorch implementation holds, per module class:

- saved tensors, as they are really kept (rules in :mod:`supernet.transfer.memory_trace`): plain
  ``nn.Conv2d`` and frozen-statistics BN keep their input whenever anything about them needs a
  gradient (also for a frozen weight or a bias-only layer; plain ``nn.Linear`` only for its
  weight gradient, as the paper counts), plain ReLU its 32-bit output, plain ReLU6 and in-place
  h-swish a copy of their input, group norm its input plus per-group mean and 1/std even when γ
  and β are frozen (the input gradient needs them), native avg-pool its input, training-mode
  dropout a 32-bit mask. The memory-efficient modules of
  :mod:`supernet.transfer.efficient` and the 8-bit layers of :mod:`supernet.transfer.quantize`
  keep what their autograd functions save: nothing for a frozen conv / linear / BN or a tiled
  avg-pool, a bit-packed mask for ReLU, nothing for group norm when only β trains and its input
  needs no gradient. A tensor saved by two layers counts once, as autograd keeps it once.
- ``saved_fixed_bytes_full``: saved tensors whose size does not grow with the batch (the
  standardized weight of weight-standardized convs and its gradient graph, batch-statistics BN).
- parameter storage as held (fp32 frozen weights unless 8-bit, codebooks, BN buffers, caches),
  fp32 gradients of trainable parameters and optimizer state (Adam: 2 moments + a step counter).

Which number compares with what: ``saved_total_bytes(B)`` (``B · saved_bytes_full`` +
``saved_fixed_bytes_full``) is what :func:`supernet.transfer.measure.measure_training_memory`
measures (autograd's saved tensors at the end of the forward pass). ``activation_bytes`` (A) is a
peak that also holds one layer's working tensors and the residual input; it is not measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from supernet.errors import ConfigError
from supernet.transfer.memory_trace import MemoryTracer, TracedRow, mask_elements
from supernet.transfer.quantize import QuantizedConv2d, QuantizedLinear

__all__ = [
    "OPTIMIZERS",
    "LayerMemory",
    "MemoryReport",
    "training_memory",
    "unique_storage_bytes",
]

PAPER_TRAINABLE_BYTES = 4  # 32-bit trainable parameters
PAPER_FROZEN_BYTES = 1  # 8-bit frozen parameters
OPTIMIZERS = ("adam", "adamw", "sgd")
"""Optimizers whose state is modelled: Adam/AdamW (two moments + step), SGD with momentum."""


@dataclass(frozen=True)
class LayerMemory:
    """One step of the forward pass (a leaf module, or one op of squeeze-and-excitation).

    Shapes are per image (no batch dimension); bytes are per image.

    Attributes:
        name: module name (``blocks.2.se.scale`` for an op of squeeze-and-excitation).
        kind: module class name, or the op (``mean``, ``relu``, ``hardsigmoid``, ``mul``, ...).
        backward_through: the input needs a gradient (a trainable parameter lies upstream).
        saved_bytes: saved for backward, paper accounting.
        saved_bytes_full: saved for backward by this implementation (before de-duplicating
            tensors saved by several layers).
        saved_fixed_bytes_full: saved once per step whatever the batch size (weight-derived).
        working_bytes: the layer's own input + output while it runs (paper convention).
        held_bytes: kept alive by the enclosing block (residual / branch inputs), paper.
    """

    name: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    backward_through: bool
    saved_bytes: int
    saved_bytes_full: int
    saved_fixed_bytes_full: int
    working_bytes: int
    held_bytes: int


@dataclass(frozen=True)
class MemoryReport:
    """Training memory of one model for one input size (see the module docstring).

    Attributes (bytes; ``*_per_image`` quantities have no ``B`` factor):
        layers: per-layer rows in forward order.
        activation_bytes: ``A``, paper, per image (a peak).
        saved_bytes: paper saved-for-backward bytes per image (sum over layers).
        param_bytes: ``P``, paper.
        activation_bytes_full: peak per image, full accounting (tensors de-duplicated).
        saved_bytes_full: saved tensors per image, full accounting (de-duplicated).
        saved_fixed_bytes_full: saved tensors per step whose size does not depend on the batch.
        saved_mask_elements_full: elements per image of each bit-packed mask among the saved
            tensors (counted at ``ceil(n / 8)`` bytes per image in ``saved_bytes_full``; a batch
            packs ``ceil(B · n / 8)``).
        param_storage_bytes: parameters and buffers as stored.
        grad_bytes: gradients of the trainable parameters.
        optimizer_bytes: optimizer state (``optimizer``) of the trainable parameters.
    """

    layers: tuple[LayerMemory, ...]
    batch_size: int
    input_shape: tuple[int, int, int]
    optimizer: str
    trainable_params: int
    frozen_params: int
    activation_bytes: int
    saved_bytes: int
    param_bytes: int
    activation_bytes_full: int
    saved_bytes_full: int
    saved_fixed_bytes_full: int
    saved_mask_elements_full: tuple[int, ...]
    param_storage_bytes: int
    grad_bytes: int
    optimizer_bytes: int

    def _batch(self, batch_size: int | None) -> int:
        return self.batch_size if batch_size is None else _check_int("batch_size", batch_size)

    def paper_total_bytes(self, batch_size: int | None = None) -> int:
        """``B · A + P`` (TinyTL, arXiv 2007.11622, Fig. 1 / Sec. 4.1); ``B`` defaults to the
        report's batch size."""
        return self._batch(batch_size) * self.activation_bytes + self.param_bytes

    def saved_total_bytes(self, batch_size: int | None = None, *, accounting: str = "full") -> int:
        """Bytes saved for backward by one forward pass of ``B`` images: ``B · saved_bytes``
        (``accounting="paper"``) or ``B · saved_bytes_full + saved_fixed_bytes_full`` (``"full"``,
        what :func:`~supernet.transfer.measure.measure_training_memory` measures).

        Raises:
            ConfigError: ``accounting`` is not ``"paper"`` or ``"full"``.
        """
        b = self._batch(batch_size)
        if accounting == "paper":
            return b * self.saved_bytes
        if accounting == "full":
            masks = self.saved_mask_elements_full  # packed per batch, not per image
            packing = sum(math.ceil(b * n / 8) - b * math.ceil(n / 8) for n in masks)
            return b * self.saved_bytes_full + packing + self.saved_fixed_bytes_full
        raise ConfigError(f"accounting = {accounting!r} is not allowed; choose from paper, full")

    def full_total_bytes(self, batch_size: int | None = None) -> int:
        """``B · A_full`` + fixed saved bytes + parameter storage + gradients + optimizer state: a
        simple sum (an upper bound of the step's peak; gradients appear while activations are
        released)."""
        return (self._batch(batch_size) * self.activation_bytes_full + self.saved_fixed_bytes_full
                + self.param_storage_bytes + self.grad_bytes + self.optimizer_bytes)  # fmt: skip

    def summary(self, batch_size: int | None = None) -> dict[str, int]:
        """Every part at ``batch_size`` (default: the report's), bytes, for tables."""
        b = self._batch(batch_size)
        return {
            "batch_size": b,
            "paper_activation_bytes": b * self.activation_bytes,
            "paper_saved_bytes": self.saved_total_bytes(b, accounting="paper"),
            "paper_param_bytes": self.param_bytes,
            "paper_total_bytes": self.paper_total_bytes(b),
            "full_activation_bytes": b * self.activation_bytes_full,
            "full_saved_bytes": self.saved_total_bytes(b),
            "param_storage_bytes": self.param_storage_bytes,
            "grad_bytes": self.grad_bytes,
            "optimizer_bytes": self.optimizer_bytes,
            "full_total_bytes": self.full_total_bytes(b),
        }


def _layer(r: TracedRow) -> LayerMemory:
    return LayerMemory(r.name, r.kind, r.x.shape, r.y.shape, r.x.rg, r.saved,
                       sum(r.saved_full.values()), r.fixed, r.working, r.held)  # fmt: skip


def _peaks(rows: list[TracedRow]) -> tuple[int, int, int, dict[Any, int]]:
    """(A paper, saved paper, A full, saved full tensors ``{key: bytes}``), per image."""
    paper_peak = paper_saved = full_peak = 0
    saved_full: dict[Any, int] = {}
    for r in rows:
        paper_peak = max(paper_peak, r.working + paper_saved + r.held)
        paper_saved += r.saved
        alive = {**saved_full, **r.held_full, r.x.key: r.x.nbytes, r.y.key: r.y.nbytes}
        full_peak = max(full_peak, sum(alive.values()))
        saved_full.update(r.saved_full)
    return paper_peak, paper_saved, full_peak, saved_full


def unique_storage_bytes(tensors: Any) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views and shared tensors count once)."""
    storages = {}
    for t in tensors:
        if t is not None:
            s = t.untyped_storage()
            storages[(t.device, s.data_ptr())] = s.nbytes()
    return sum(storages.values())


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} = {value!r} must be an int >= 1")
    return value


def training_memory(
    model: nn.Module,
    *,
    batch_size: int,
    resolution: int,
    in_channels: int | None = None,
    optimizer: str = "adam",
) -> MemoryReport:
    """Model the training memory of ``model`` as it is set up now (``requires_grad`` of every
    parameter, module classes, train/eval modes), by the paper's accounting and the full one
    (module docstring).

    The model is traced by one forward pass of a zero batch-1 input with forward hooks, autograd on
    (so that "backward passes through" follows the data flow), modules other than dropout in
    eval mode (no statistics update) and the RNG state restored; the model is otherwise unchanged
    (memory-efficient weight-standardized convs fill their weight cache, as in training).

    Shapes: input ``[batch_size, in_channels, resolution, resolution]``.

    Args:
        in_channels: image channels; default: the first convolution's input channels.
        optimizer: one of :data:`OPTIMIZERS` (state counted in the full accounting).

    Raises:
        ConfigError: ``batch_size`` or ``resolution`` is not a positive int, an unknown
            ``optimizer``, a model without parameters or convolution (when ``in_channels`` is
            not given), or a leaf module without a memory rule (the message names its type).

    Reference: TinyTL (Cai et al., NeurIPS'20, arXiv 2007.11622), Fig. 1, Sec. 3.1 (Eq. 1-2),
    Sec. 3.2 (lite residual), Sec. 4.1 (8-bit frozen weights).
    """
    batch_size = _check_int("batch_size", batch_size)
    resolution = _check_int("resolution", resolution)
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer = {optimizer!r} is not allowed; choose from {OPTIMIZERS}")
    param = next(model.parameters(), None)
    if param is None:
        raise ConfigError("the model has no parameters")
    if in_channels is None:
        conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        if conv is None:
            raise ConfigError("in_channels is needed: the model has no convolution")
        in_channels = conv.in_channels
    in_channels = _check_int("in_channels", in_channels)

    tracer = MemoryTracer(model)
    handles = tracer.attach(model)
    try:
        for m in model.modules():
            if not isinstance(m, nn.Dropout):
                m.training = False
        devices = [param.device] if param.device.type == "cuda" else []
        with torch.enable_grad(), torch.random.fork_rng(devices=devices):
            model(torch.zeros(1, in_channels, resolution, resolution, dtype=param.dtype,
                              device=param.device))  # fmt: skip
    finally:
        for h in handles:
            h.remove()
        for m, mode in tracer.training.items():
            m.training = mode

    rows = tracer.rows
    paper_peak, paper_saved, full_peak, full_saved = _peaks(rows)
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    n_frozen = sum(p.numel() for p in params if not p.requires_grad) + sum(
        m.weight_indices.numel() for m in model.modules()
        if isinstance(m, (QuantizedConv2d, QuantizedLinear))
    )  # fmt: skip
    grad_bytes = sum(p.numel() * p.element_size() for p in trainable)
    optimizer_bytes = (2 * grad_bytes + 4 * len(trainable)) if optimizer != "sgd" else grad_bytes
    return MemoryReport(
        layers=tuple(_layer(r) for r in rows),
        batch_size=batch_size,
        input_shape=(in_channels, resolution, resolution),
        optimizer=optimizer,
        trainable_params=n_trainable,
        frozen_params=n_frozen,
        activation_bytes=paper_peak,
        saved_bytes=paper_saved,
        param_bytes=PAPER_TRAINABLE_BYTES * n_trainable + PAPER_FROZEN_BYTES * n_frozen,
        activation_bytes_full=full_peak,
        saved_bytes_full=sum(full_saved.values()),
        saved_fixed_bytes_full=sum(r.fixed for r in rows),
        saved_mask_elements_full=tuple(n for k in full_saved if (n := mask_elements(k))),
        param_storage_bytes=unique_storage_bytes([*model.parameters(), *model.buffers()]),
        grad_bytes=grad_bytes,
        optimizer_bytes=optimizer_bytes,
    )
