"""HAQ's environment: one episode walks the quantizable layers twice per layer (weight bits, then
activation bits); at the end the policy is lowered until it meets the budgets and scored.

State of step ``k`` (HAQ, arXiv 1811.08886, Sec. 3.1, Eq. 1-2), each feature divided by its
largest value over the layers: ``(k, c_in, c_out, kernel, stride, feature size, weights,
depthwise, weight-or-activation, a_{k-1})``; a linear layer has kernel 1 and stride 0 as in the
paper. Action: a number in ``[0, 1]`` mapped to ``round(1.5 + 7a)`` bits, i.e. 2 to 8 (Sec.
3.2, the continuous action of the reference code). Budgets (Sec. 3.3): the model size
(weights × bits / 8 + float32 biases) and the activation traffic (input elements × bits, per
image); an over-budget policy is lowered one bit per layer in turn until both hold
(:func:`supernet.compress.mixed_precision.lower_bits`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from supernet.compress.mixed_precision import BITS, LayerInfo, lower_bits

__all__ = ["STATE_SIZE", "QuantizationEnv", "action_to_bits", "finish_policy"]

STATE_SIZE = 10


def action_to_bits(action: float) -> int:
    """``[0, 1]`` → ``2 .. 8`` bits (uniform bins)."""
    a = float(np.clip(action, 0.0, 1.0))
    return int(np.clip(round(BITS[0] - 0.5 + a * len(BITS)), BITS[0], BITS[-1]))


def finish_policy(
    layers: Sequence[LayerInfo],
    weight_bits: Sequence[int],
    act_bits: Sequence[int],
    size_budget_bytes: float,
    act_budget_bits: float | None,
) -> tuple[list[int], list[int]]:
    """The agent's widths lowered until the model size (bytes) and, when given, the activation
    traffic (bits per image) meet their budgets.

    Raises:
        ConfigError: a budget below what every layer at 2 bits gives (named).

    Reference: HAQ, arXiv 1811.08886, Sec. 3.3.
    """
    fixed = sum(info.bias_bytes for info in layers)
    w = lower_bits(weight_bits, [i.weights / 8 for i in layers], fixed, size_budget_bytes)
    a = list(act_bits)
    if act_budget_bits is not None:
        a = lower_bits(act_bits, [float(i.activations) for i in layers], 0.0, act_budget_bits)
    return w, a


class QuantizationEnv:
    """A gymnasium environment (built on first use): use :meth:`make`.

    ``evaluate_policy(weight_bits, act_bits) -> reward`` scores a finished, budget-meeting
    policy.
    """

    @staticmethod
    def make(
        layers: Sequence[LayerInfo],
        size_budget_bytes: float,
        act_budget_bits: float | None,
        evaluate_policy: Callable[[list[int], list[int]], float],
        *,
        on_episode: Callable[[int, float, list[int], list[int]], None] | None = None,
    ) -> Any:
        """The environment; ``on_episode(episode, reward, weight_bits, act_bits)`` after each.

        Raises:
            ConfigError: a budget below what all-2-bit layers reach (checked up front).
        """
        import gymnasium as gym

        finish_policy(layers, [BITS[0]] * len(layers), [BITS[0]] * len(layers),
                      size_budget_bytes, act_budget_bits)  # fmt: skip

        class _Env(gym.Env):
            metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's API

            def __init__(self) -> None:
                self.observation_space = gym.spaces.Box(0.0, 1.0, (STATE_SIZE,), np.float32)
                self.action_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
                rows = [[i.index, i.in_channels, i.out_channels, i.kernel_size,
                         i.stride if i.kind == "conv" else 0, i.feature_size, i.weights,
                         i.depthwise] for i in layers]  # fmt: skip
                self.static = np.array(rows, dtype=np.float64)
                self.scale = np.maximum(self.static.max(0), 1.0)
                self.steps = 2 * len(layers)
                self.episode, self.history = 0, []
                self.best: tuple[float, list[int], list[int]] | None = None
                self._start()

            def _start(self) -> None:
                self.k, self.wbits, self.abits, self.prev = 0, [], [], 1.0

            def _obs(self) -> np.ndarray:
                layer, is_act = divmod(self.k, 2)
                dynamic = [float(is_act), self.prev]
                return np.concatenate([self.static[layer] / self.scale, dynamic]).astype(np.float32)

            def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
                super().reset(seed=seed)
                self._start()
                return self._obs(), {}

            def step(self, action: np.ndarray) -> Any:
                bits = action_to_bits(float(action[0]))
                (self.abits if self.k % 2 else self.wbits).append(bits)
                self.prev = float(np.clip(action[0], 0.0, 1.0))
                self.k += 1
                if self.k < self.steps:
                    return self._obs(), 0.0, False, False, {}
                w, a = finish_policy(layers, self.wbits, self.abits, size_budget_bytes,
                                     act_budget_bits)  # fmt: skip
                reward = float(evaluate_policy(w, a))
                self.history.append((reward, w, a))
                if self.best is None or reward > self.best[0]:
                    self.best = (reward, w, a)
                if on_episode is not None:
                    on_episode(self.episode, reward, w, a)
                self.episode += 1
                self.k = self.steps - 1
                return self._obs(), reward, True, False, {"weight_bits": w, "act_bits": a}

        return _Env()
