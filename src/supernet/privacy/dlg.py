"""Deep Leakage from Gradients: rebuild a training batch from the update it produced.

The victim computes the gradient of one training step on a batch and shares it (federated
learning, or an on-device update sent back). The attacker holds the same model and the shared
gradient. It draws dummy inputs and dummy soft labels and optimises both with L-BFGS so that the
gradient they produce matches the shared one in squared L2 distance (DLG, Algorithm 1):

    x', y' = argmin_{x', y'} || dL(F(x', W), y') / dW - ∇W ||²

With iDLG's analytic label recovery (batch 1), the label is read off the classifier's gradient
first and only the input is optimised.

The setting follows the authors' code (mit-han-lab/dlg): dummy input and label logits from a
standard normal, soft label = softmax of the label logits, cross-entropy against soft targets,
``torch.optim.LBFGS`` with its defaults (lr 1, up to 20 inner iterations per step); one
"iteration" is one L-BFGS step.

References:
    Zhu, Liu, Han, "Deep Leakage from Gradients", NeurIPS'19, arXiv 1906.08935, Sec. 3, Alg. 1.
    Zhao, Mopuri, Bilen, "iDLG: Improved Deep Leakage from Gradients", arXiv 2001.02610, Sec. 3.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from supernet.errors import ConfigError

__all__ = [
    "LABEL_STRATEGIES",
    "MAX_BATCH_SIZE",
    "Reconstruction",
    "dlg_attack",
    "gradient_distance",
    "recover_label",
    "shared_gradient",
    "soft_cross_entropy",
]

MAX_BATCH_SIZE = 8
"""Largest batch the attack accepts: the paper reconstructs batches of up to 8 images (Sec. 4.1,
Table 1); beyond that the L-BFGS search over B·C·H·W unknowns rarely converges."""

LABEL_STRATEGIES = ("dlg", "idlg")
"""``dlg``: the labels are optimised with the inputs (DLG); ``idlg``: the label of a batch of one
is recovered analytically from the classifier's gradient first (iDLG)."""

StepCallback = Callable[[int, float, torch.Tensor], None]


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets, averaged over the batch.

    Shapes: ``logits`` and ``targets`` ``[B, K]`` (each target row sums to 1) → scalar.
    With one-hot targets this equals ``F.cross_entropy``.
    """
    return torch.mean(torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1))


def _check_batch(shape: Sequence[int]) -> int:
    if len(shape) != 4:
        raise ConfigError(f"images must be [B, C, H, W], got shape {tuple(shape)}")
    batch = int(shape[0])
    if not 1 <= batch <= MAX_BATCH_SIZE:
        raise ConfigError(
            f"batch size = {batch} is not supported by the attack; allowed: 1..{MAX_BATCH_SIZE}"
        )
    return batch


def _named(model: nn.Module, names: Sequence[str]) -> list[nn.Parameter]:
    params = dict(model.named_parameters())
    unknown = [n for n in names if n not in params]
    if unknown:
        shown = ", ".join(list(params)[:6]) + (", ..." if len(params) > 6 else "")
        raise ConfigError(
            f"shared parameter(s) {unknown} are not in the model; its parameters are: {shown}"
        )
    if not names:
        raise ConfigError("no shared parameter given; share at least one parameter of the model")
    return [params[n] for n in names]


@contextlib.contextmanager
def _requiring_grad(params: Sequence[nn.Parameter]) -> Iterator[None]:
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p, flag in zip(params, before, strict=True):
            p.requires_grad_(flag)


def shared_gradient(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    names: Sequence[str] | None = None,
) -> dict[str, torch.Tensor]:
    """The update a device shares: the gradient of the mean cross-entropy of one step on
    ``(images, labels)`` with respect to the parameters ``names`` (default: those that require
    grad, i.e. the ones the transfer method trains).

    The model is used as it is: put it in eval mode first for a deterministic forward (dropout).

    Shapes: ``images`` ``[B, C, H, W]``, ``labels`` int64 ``[B]`` → ``{name: tensor shaped like
    the parameter}``, in ``named_parameters`` order.

    Raises:
        ConfigError: a name that is not a parameter of ``model`` (the model's names are listed),
            no parameter to share, or a batch size outside 1..:data:`MAX_BATCH_SIZE`.
    """
    _check_batch(images.shape)
    if names is None:
        names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = _named(model, names)
    with _requiring_grad(params):
        loss = F.cross_entropy(model(images), labels)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    return {
        n: (torch.zeros_like(p) if g is None else g.detach().clone())
        for n, p, g in zip(names, params, grads, strict=True)
    }


def gradient_distance(
    dummy: Sequence[torch.Tensor | None], shared: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Squared L2 distance ``Σ ||g' − g||²`` summed over all shared tensors (DLG, Alg. 1, line 5).
    A ``None`` dummy gradient (parameter unused by the forward) counts as zeros."""
    total = torch.zeros((), device=shared[0].device)
    for gd, gs in zip(dummy, shared, strict=True):
        total = total + ((gs if gd is None else gd - gs) ** 2).sum()
    return total


def _classifier(model: nn.Module, shared: Mapping[str, torch.Tensor]) -> tuple[str, nn.Linear]:
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = (name, module)
    if last is None:
        raise ConfigError("iDLG needs a model whose last layer is an nn.Linear; this has none")
    name, linear = last
    prefix = f"{name}." if name else ""
    if f"{prefix}weight" not in shared and f"{prefix}bias" not in shared:
        raise ConfigError(
            f"iDLG reads the label from the classifier's gradient, but {name or 'the classifier'}"
            " is not among the shared parameters"
        )
    return prefix, linear


def recover_label(model: nn.Module, shared: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """iDLG's analytic label of a batch of one: for cross-entropy, the classifier's bias gradient
    is ``softmax(z) − onehot(y)``, negative only at the true class; without a shared bias, the
    row of the weight gradient with the smallest sum (its input features are non-negative after
    sigmoid / ReLU, Zhao et al., Sec. 3).

    Shapes: → int64 ``[1]``.

    Raises:
        ConfigError: the model has no ``nn.Linear`` or its last one is not shared.

    Reference: iDLG, arXiv 2001.02610, Sec. 3 (Eq. 3-5).
    """
    prefix, _ = _classifier(model, shared)
    bias = shared.get(f"{prefix}bias")
    score = bias if bias is not None else shared[f"{prefix}weight"].sum(dim=-1)
    return score.argmin().reshape(1).to(torch.int64)


@dataclass(frozen=True)
class Reconstruction:
    """What :func:`dlg_attack` found.

    Shapes: ``images`` ``[B, C, H, W]`` (the model's input space), ``label_probs`` ``[B, K]``,
    ``labels`` int64 ``[B]``.

    Attributes:
        images: the dummy inputs at the iteration of lowest gradient distance.
        label_probs: the soft labels there (one-hot with iDLG).
        labels: their argmax.
        distances: gradient distance before each iteration and after the last
            (``iterations + 1`` values, fewer if the search stopped early).
        best_iteration: index into ``distances`` of the returned reconstruction.
        seconds: wall time of the search.
        diverged: the distance became NaN or infinite and the search stopped there.
    """

    images: torch.Tensor
    label_probs: torch.Tensor
    labels: torch.Tensor
    distances: tuple[float, ...]
    best_iteration: int
    seconds: float
    diverged: bool


def dlg_attack(
    model: nn.Module,
    shared: Mapping[str, torch.Tensor],
    *,
    input_shape: Sequence[int],
    num_classes: int,
    iterations: int = 300,
    label_strategy: str = "dlg",
    seed: int = 0,
    max_inner_iterations: int = 20,
    patience: int | None = None,
    on_step: StepCallback | None = None,
) -> Reconstruction:
    """Reconstruct the batch behind ``shared`` by gradient matching (DLG, Algorithm 1).

    Args:
        model: the victim's model with the weights the gradient was computed at (eval mode).
        shared: the shared gradient, ``{parameter name: tensor}`` (possibly defended).
        input_shape: ``(B, C, H, W)`` of the batch to rebuild (the attacker knows the model's
            input size and the batch size).
        num_classes: K, the classifier's outputs.
        iterations: L-BFGS steps (the paper runs 300).
        label_strategy: one of :data:`LABEL_STRATEGIES`.
        seed: seeds the dummy input and label (a CPU ``torch.Generator``).
        max_inner_iterations: L-BFGS function evaluations per step (torch's default, as the
            reference code).
        patience: stop early after this many iterations without a lower distance (default:
            run all ``iterations``, as the paper).
        on_step: called as ``on_step(iteration, distance, images)`` before each step and after
            the last, with the dummy images of that iteration (a detached copy).

    The search stops early when the distance becomes NaN or infinite (``diverged``) or, with
    ``patience``, when it has not improved for that many iterations.

    Shapes: ``input_shape`` ``(B, C, H, W)`` → :class:`Reconstruction`.

    Raises:
        ConfigError: a shared name not in the model, a shared tensor of the wrong shape, a batch
            size outside 1..:data:`MAX_BATCH_SIZE`, ``idlg`` with a batch of more than one, an
            unknown label strategy, ``iterations < 1``, ``patience < 1`` or ``num_classes < 2``.

    Reference: DLG, arXiv 1906.08935, Alg. 1; iDLG, arXiv 2001.02610.
    """
    if label_strategy not in LABEL_STRATEGIES:
        raise ConfigError(
            f"label strategy = {label_strategy!r} is not known; choose from {LABEL_STRATEGIES}"
        )
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ConfigError(f"iterations = {iterations!r} must be an int >= 1")
    if patience is not None and patience < 1:
        raise ConfigError(f"patience = {patience} must be >= 1 (or None: no early stop)")
    if num_classes < 2:
        raise ConfigError(f"num_classes = {num_classes} must be >= 2")
    shape = tuple(int(s) for s in input_shape)
    batch = _check_batch(shape)
    names = list(shared)
    params = _named(model, names)
    for name, p in zip(names, params, strict=True):
        if shared[name].shape != p.shape:
            raise ConfigError(
                f"shared gradient {name!r} has shape {tuple(shared[name].shape)}, "
                f"the parameter {tuple(p.shape)}"
            )
    if label_strategy == "idlg" and batch != 1:
        raise ConfigError(f"label strategy 'idlg' recovers the label of a batch of 1, not {batch}")
    device = params[0].device
    target = [shared[n].to(device) for n in names]
    generator = torch.Generator().manual_seed(seed)
    dummy = torch.randn(shape, generator=generator).to(device).requires_grad_(True)
    label_logits = torch.randn((batch, num_classes), generator=generator).to(device)
    if label_strategy == "idlg":
        fixed = F.one_hot(recover_label(model, shared), num_classes).float().to(device)
        variables = [dummy]
    else:
        label_logits.requires_grad_(True)
        variables = [dummy, label_logits]

    def soft_labels() -> torch.Tensor:
        return fixed if label_strategy == "idlg" else F.softmax(label_logits, dim=-1)

    optimizer = torch.optim.LBFGS(variables, max_iter=max_inner_iterations)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = soft_cross_entropy(model(dummy), soft_labels())
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        distance = gradient_distance(grads, target)
        distance.backward()
        return distance

    distances: list[float] = []
    best = (math.inf, 0, dummy.detach().clone(), soft_labels().detach().clone())
    diverged = False
    start = time.perf_counter()
    with _requiring_grad(params):
        for step in range(iterations + 1):
            snapshot, labels_now = dummy.detach().clone(), soft_labels().detach().clone()
            if step < iterations:
                value = float(optimizer.step(closure).detach())
            else:
                value = float(closure().detach())
            distances.append(value)
            if on_step is not None:
                on_step(step, value, snapshot)
            if not math.isfinite(value):
                diverged = True
                break
            if value < best[0]:
                best = (value, step, snapshot, labels_now)
            elif patience is not None and step - best[1] >= patience:
                break
    model.zero_grad(set_to_none=True)
    _, best_step, images, probs = best
    return Reconstruction(
        images=images,
        label_probs=probs,
        labels=probs.argmax(dim=-1),
        distances=tuple(distances),
        best_iteration=best_step,
        seconds=time.perf_counter() - start,
        diverged=diverged,
    )
