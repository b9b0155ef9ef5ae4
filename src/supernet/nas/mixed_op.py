"""ProxylessNAS mixed operation: candidate MBConvs of one block slot, architecture parameters α,
and binary gates that keep one path in memory.

A mixed op holds N candidate paths (MBConvs of every kernel size x expand ratio of the space,
plus *skip* where the slot may be dropped) and N real-valued architecture parameters α. Path
probabilities are ``p = softmax(α)``. Path binarization (Sec. 3.2) replaces the N-path mixture
by binary gates ``g``: exactly one entry is 1, drawn from ``p``, so one path runs.

Two kinds of steps use the gates:

- weight step (:meth:`MixedOp.sample_one` then ``forward``): one path drawn from ``p`` runs and
  is trained; the others are not touched (their gradients stay ``None``).
- architecture step (:meth:`MixedOp.sample_two` then ``forward``): two paths are drawn from
  ``p`` without replacement and one of them is made active by the probabilities of the two
  (the reference's ``"two"`` mode). Only the active path keeps activations for backward; the
  inactive one runs under ``torch.no_grad`` and only its output is kept, to give the gate
  gradient ``∂L/∂g_j = <o_j, ∂L/∂y>``. :meth:`MixedOp.set_alpha_grad` turns the two gate
  gradients into α gradients by the BinaryConnect-style estimate
  ``∂L/∂α_i ≈ Σ_j ∂L/∂g_j · p_j (δ_ij − p_i)`` (paper Eq. 5; ``p`` the softmax over the two
  sampled α), and :meth:`MixedOp.rescale_alpha` shifts the two updated α so that the
  probabilities of the paths that were not sampled stay as they were.

When the active path is *skip* the block is the identity, no gate gradient exists and α is not
updated in that step (as in the reference, where a zero op short-cuts the block).

Reference: ProxylessNAS (Cai, Zhu, Han; ICLR'19; arXiv 1812.00332), Sec. 3.1 (over-parameterized
network, mixed op), Sec. 3.2 (path binarization, Eq. 4-5, two sampled paths); released code
``mit-han-lab/proxylessnas``, ``search/modules/mix_op.py`` (``MixedEdge``, mode ``"two"``).
"""

from __future__ import annotations

import torch
from torch import nn

from supernet.errors import ConfigError

__all__ = ["SKIP", "MixedOp", "op_name"]

SKIP = None
"""The *skip* candidate (identity: the block is dropped) in a list of ``(kernel, expand)`` ops."""


def op_name(op: tuple[int, int] | None) -> str:
    """``"k5e4"`` for kernel size 5 and expand ratio 4; ``"skip"`` for :data:`SKIP`."""
    return "skip" if op is None else f"k{op[0]}e{op[1]}"


class MixedOp(nn.Module):
    """One searchable block slot: candidate paths, α, binary gates.

    Shapes: ``[B, C_in, H, W]`` → ``[B, C_out, H / stride, W / stride]`` (a skip path needs
    ``C_in == C_out`` and stride 1).

    Args:
        ops: the candidates' ``(kernel_size, expand_ratio)``, :data:`SKIP` for skip.
        paths: one module per candidate (``nn.Identity`` for skip).
        alpha_init_std: α starts as ``N(0, alpha_init_std²)`` (reference: 1e-3) drawn from
            ``generator``.

    Raises:
        ConfigError: ``ops`` and ``paths`` differ in length or have fewer than 2 candidates.
    """

    def __init__(
        self,
        ops: list[tuple[int, int] | None],
        paths: list[nn.Module],
        *,
        alpha_init_std: float = 1e-3,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if len(ops) != len(paths) or len(ops) < 2:
            raise ConfigError(
                f"a mixed op needs >= 2 candidates and one path per op; got {len(ops)} ops, "
                f"{len(paths)} paths"
            )
        self.ops = list(ops)
        self.paths = nn.ModuleList(paths)
        alpha = torch.randn(len(ops), generator=generator) * alpha_init_std
        self.alpha = nn.Parameter(alpha)
        self.active = 0
        self.inactive: int | None = None
        self.gates: torch.Tensor | None = None
        self._old_alpha: torch.Tensor | None = None

    @property
    def num_ops(self) -> int:
        return len(self.ops)

    def probs(self) -> torch.Tensor:
        """``softmax(α)``, ``[num_ops]``, differentiable."""
        return torch.softmax(self.alpha, dim=0)

    def chosen(self) -> int:
        """Index of the most likely path (the derived architecture's op)."""
        return int(torch.argmax(self.alpha.detach()))

    def is_skip(self, index: int) -> bool:
        return self.ops[index] is None

    # --- binarization ---------------------------------------------------------------------------
    def sample_one(self, generator: torch.Generator) -> None:
        """Weight step: one active path drawn from ``softmax(α)``; no inactive path."""
        probs = self.probs().detach().cpu()  # the generator is a CPU one
        self.active = int(torch.multinomial(probs, 1, generator=generator))
        self.inactive, self.gates = None, None

    def sample_two(self, generator: torch.Generator) -> None:
        """Architecture step: two paths drawn from ``softmax(α)`` without replacement, the
        active one of them drawn from the softmax over their two α; binary gates ``[1, 0]``
        (active, inactive) that record their gradient."""
        probs = self.probs().detach().cpu()  # the generator is a CPU one
        pair = torch.multinomial(probs, 2, replacement=False, generator=generator).tolist()
        two = torch.softmax(self.alpha.detach().cpu()[pair], dim=0)
        c = int(torch.multinomial(two, 1, generator=generator))
        self.active, self.inactive = pair[c], pair[1 - c]
        self.gates = None  # made by forward, on the output's device

    def sampled_probs(self) -> torch.Tensor:
        """Differentiable path probabilities of this step, ``[num_ops]``: after
        :meth:`sample_two`, the softmax over the two sampled α placed at their indices (zeros
        elsewhere; the reference's ``current_prob_over_ops``), else ``softmax(α)``."""
        if self.inactive is None:
            return self.probs()
        pair = [self.active, self.inactive]
        two = torch.softmax(self.alpha[pair], dim=0)
        out = torch.zeros(self.num_ops, dtype=two.dtype, device=two.device)
        return out.index_put((torch.tensor(pair, device=two.device),), two)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.paths[self.active](x)
        if self.inactive is None or self.is_skip(self.active):
            return out
        with torch.no_grad():  # the inactive path keeps only its output, for the gate gradient
            other = self.paths[self.inactive](x)
        # binary gates [active, inactive] = [1, 0]: a leaf that records dL/dg
        self.gates = torch.tensor([1.0, 0.0], dtype=out.dtype, device=out.device,
                                  requires_grad=True)  # fmt: skip
        return self.gates[0] * out + self.gates[1] * other

    # --- α update -------------------------------------------------------------------------------
    def set_alpha_grad(self) -> None:
        """Add the binary-gate estimate of ``∂L/∂α`` (paper Eq. 5, over the two sampled paths)
        to ``α.grad`` (which may already hold the latency term's gradient); with skip active,
        set ``α.grad = None`` (no update this step). Remembers α to rescale after the step.

        Raises:
            ConfigError: no architecture step was sampled (:meth:`sample_two`) or no backward
                pass ran through the gates.
        """
        if self.inactive is None:
            raise ConfigError("set_alpha_grad needs an architecture step (sample_two) first")
        if self.is_skip(self.active):
            self.alpha.grad = None
            self._old_alpha = None
            return
        if self.gates is None or self.gates.grad is None:
            raise ConfigError("set_alpha_grad needs a backward pass through the binary gates")
        pair = [self.active, self.inactive]
        gate_grad = self.gates.grad.detach().to(self.alpha.device, self.alpha.dtype)
        p = torch.softmax(self.alpha.detach()[pair], dim=0)
        eye = torch.eye(2, dtype=p.dtype, device=p.device)
        # grad[i] = sum_j gate_grad[j] * p[j] * (delta_ij - p[i])
        grad = ((eye - p[:, None]) * (gate_grad * p)[None, :]).sum(1)
        if self.alpha.grad is None:
            self.alpha.grad = torch.zeros_like(self.alpha)
        self.alpha.grad[pair] += grad
        self._old_alpha = self.alpha.detach()[pair].clone()

    @torch.no_grad()
    def rescale_alpha(self) -> None:
        """After the optimizer step: shift the two sampled α by one offset so that
        ``logsumexp`` over them is unchanged, which keeps the probabilities of the other paths
        as they were (reference ``rescale_updated_arch_param``). Nothing when skip was active."""
        if self._old_alpha is None:
            return
        pair = [self.active, self.inactive]
        offset = torch.logsumexp(self.alpha[pair], 0) - torch.logsumexp(self._old_alpha, 0)
        self.alpha[pair] -= offset
        self._old_alpha = None

    def extra_repr(self) -> str:
        return f"ops=[{', '.join(op_name(o) for o in self.ops)}]"
