"""Training memory by the TinyTL reference profiler's rules ("reference accounting").

The numbers of TinyTL's tables (Cai, Gan, Zhu, Han, NeurIPS'20, arXiv 2007.11622, Table 1-2,
Fig. 6) come from its released profiler (mit-han-lab/tinyml, ``tinytl/utils/
memory_cost_profiler.py``). This module follows its rules exactly, beside the library's own
accountings in :mod:`supernet.transfer.memory` (which keep, among others, the input of every
block with a lite residual and count ReLU masks only where backward passes):

- ``memory(B) = B · A + P``; ``P``: 4 bytes per trainable parameter, 1 byte per frozen one.
- Per leaf module, in forward order: *saved* bytes (for backward) and *working* bytes:

  ===================  ==================================  ===================================
  leaf                 saved (per image)                   working
  ===================  ==================================  ===================================
  conv                 4·|input| if its weight trains      4·|input| + floor(4·|output| / groups)
  linear               4·|input| if its weight trains      4·|input| + 4·|output|
  batch / group norm   4·|input| if γ trains               4·|input|
  ReLU / ReLU6 / leaky |input| / 8 if backward is on       4·|input|
  sigmoid, tanh,       4·|input| if backward is on         4·|input|
  h-swish, h-sigmoid
  anything else        0                                   0
  ===================  ==================================  ===================================

- "Backward is on" for the whole network whenever any parameter other than the classifier's
  trains (the reference's ``require_backward``: feature extractor, norm, bias or lite residual
  updates) — also for the ReLUs before the first trainable layer.
- ``A`` is the peak over the leaves of working bytes + the saved bytes of the leaves before it +
  the input of the enclosing *identity-shortcut* block (only those: a block with a lite residual
  but no identity shortcut keeps nothing, nor is the main branch's output counted while the lite
  residual runs).

Shapes: an input ``[1, C, R, R]`` is traced (values do not matter); bytes are per image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from supernet.errors import ConfigError

__all__ = ["ReferenceMemory", "is_identity_shortcut_block", "reference_training_memory"]

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)
_MASKED = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)
_SMOOTH = (nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid)
ACT_BYTES = 4.0


@dataclass(frozen=True)
class ReferenceMemory:
    """Reference-accounting memory of one model at one input size (module docstring).

    Attributes (bytes): ``activation_bytes`` ``A`` per image (a peak, float as the reference
    sums ``|x| / 8``); ``saved_bytes`` saved for backward per image; ``param_bytes`` ``P``.
    """

    activation_bytes: float
    saved_bytes: float
    param_bytes: int
    require_backward: bool

    def total_bytes(self, batch_size: int) -> float:
        """``B · A + P`` (bytes)."""
        return batch_size * self.activation_bytes + self.param_bytes

    def total_mb(self, batch_size: int) -> float:
        """``B · A + P`` in MB of 10**6 bytes, the unit of TinyTL's tables (its six
        ProxylessNAS-Mobile numbers match in this unit, not in MiB)."""
        return self.total_bytes(batch_size) / 1e6


def is_identity_shortcut_block(module: nn.Module) -> bool:
    """Default rule for "a block whose input is kept": a module that says it adds its input back
    (``use_residual`` or ``identity_shortcut`` true)."""
    return bool(
        getattr(module, "identity_shortcut", False) or getattr(module, "use_residual", False)
    )


def _classifier(model: nn.Module) -> nn.Module | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def _trains(m: nn.Module) -> bool:
    w = getattr(m, "weight", None)
    return isinstance(w, torch.Tensor) and w.requires_grad


def reference_training_memory(
    model: nn.Module,
    *,
    resolution: int,
    in_channels: int = 3,
    require_backward: bool | None = None,
    residual_block: Callable[[nn.Module], bool] = is_identity_shortcut_block,
) -> ReferenceMemory:
    """Model ``model``'s training memory as it is set up now (``requires_grad`` of every
    parameter) by the TinyTL reference profiler's rules.

    Args:
        resolution: input height = width (pixels).
        require_backward: default: whether any parameter outside the last ``nn.Linear`` (the
            classifier) trains, as the reference's training script sets it.
        residual_block: which modules keep their input alive while they run.

    Raises:
        ConfigError: ``resolution`` or ``in_channels`` is not a positive int.

    Reference: TinyTL (arXiv 2007.11622), Fig. 1, Sec. 4.1; the released profiler
    ``count_activation_size`` / ``count_model_size`` (mit-han-lab/tinyml).
    """
    for name, v in (("resolution", resolution), ("in_channels", in_channels)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name} = {v!r} must be an int >= 1")
    head = _classifier(model)
    if require_backward is None:
        head_ids = {id(p) for p in head.parameters()} if head is not None else set()
        require_backward = any(p.requires_grad and id(p) not in head_ids
                               for p in model.parameters())  # fmt: skip
    state = {"peak": 0.0, "saved": 0.0, "residual": 0.0}

    def leaf_hook(m: nn.Module, args: tuple, y: torch.Tensor) -> None:
        x = args[0].numel()
        if isinstance(m, nn.Conv2d):
            saved = x * ACT_BYTES if _trains(m) else 0.0
            working = x * ACT_BYTES + (y.numel() * ACT_BYTES) // m.groups
        elif isinstance(m, nn.Linear):
            saved = x * ACT_BYTES if _trains(m) else 0.0
            working = (x + y.numel()) * ACT_BYTES
        elif isinstance(m, _NORMS):
            saved = x * ACT_BYTES if _trains(m) else 0.0
            working = x * ACT_BYTES
        elif isinstance(m, _MASKED):
            saved = x / 8 if require_backward else 0.0
            working = x * ACT_BYTES
        elif isinstance(m, _SMOOTH):
            saved = x * ACT_BYTES if require_backward else 0.0
            working = x * ACT_BYTES
        else:
            saved = working = 0.0
        state["peak"] = max(state["peak"], working + state["saved"] + state["residual"])
        state["saved"] += saved

    def enter(m: nn.Module, args: tuple) -> None:
        state["residual"] = args[0].numel() * ACT_BYTES

    def leave(m: nn.Module, args: tuple, y: torch.Tensor) -> None:
        state["residual"] = 0.0

    handles = []
    for m in model.modules():
        if not any(True for _ in m.children()):
            handles.append(m.register_forward_hook(leaf_hook))
        if residual_block(m):
            handles += [m.register_forward_pre_hook(enter), m.register_forward_hook(leave)]
    param = next(model.parameters())
    was_training = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_channels, resolution, resolution, device=param.device))
    finally:
        for h in handles:
            h.remove()
        for m, mode in was_training.items():
            m.training = mode
    params = list(model.parameters())
    param_bytes = sum(4 * p.numel() if p.requires_grad else p.numel() for p in params)
    return ReferenceMemory(state["peak"], state["saved"], param_bytes, bool(require_backward))
