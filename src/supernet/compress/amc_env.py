"""AMC's environment: one episode walks the prunable blocks of a subnet, one pruning ratio per
block, under a MACs budget; the reward is the pruned subnet's validation accuracy.

State of block ``t`` (AMC, arXiv 1802.03494, Sec. 3.2, Eq. 1), each feature divided by its
largest value over the blocks (scaled to [0, 1] as in the reference code): ``(t, type, n, c, h,
w, stride, k, MACs[t], reduced, rest, a_{t-1})`` with ``type`` = 1 for a block with
squeeze-and-excitation, ``n``/``c`` the middle/input channels, ``h = w`` the input size, ``k``
the kernel size, ``MACs[t]`` the block's channel-dependent MACs, ``reduced`` the MACs removed by
the previous actions, ``rest`` the MACs of the later blocks, ``a_{t-1}`` the previous action.

Action: the pruning ratio in ``[0, 1 - min_keep]`` (AMC keeps ≥ 20%), turned into a channel
count and clipped so that the whole subnet can still meet the budget when every later block is
pruned as far as allowed (:func:`clip_channels`, the paper's resource-constrained bound).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from supernet.compress.channel_prune import PrunableBlock
from supernet.errors import ConfigError

__all__ = ["STATE_SIZE", "ChannelPruningEnv", "clip_channels", "min_channels"]

STATE_SIZE = 12


def min_channels(blocks: Sequence[PrunableBlock], min_keep: float) -> list[int]:
    """The fewest middle channels each block may keep: ``ceil(min_keep × mid)``, at least 1."""
    return [max(1, math.ceil(min_keep * b.mid_channels)) for b in blocks]


def clip_channels(
    wanted: int,
    t: int,
    chosen: Sequence[int],
    blocks: Sequence[PrunableBlock],
    lowest: Sequence[int],
    budget_macs: float,
) -> int:
    """Channels block ``t`` keeps: ``wanted`` clipped to ``[lowest[t], mid]`` and to what the
    budget allows given ``chosen`` (blocks ``0..t-1``) and every later block at ``lowest``.

    ``budget_macs`` is the target MACs minus the fixed (unprunable) MACs. When the policy starts
    feasible (``sum(macs_per_channel * lowest) <= budget_macs``), every prefix of clipped actions
    stays feasible, so the finished policy always meets the budget.

    Reference: AMC, arXiv 1802.03494, Sec. 3.2 ("resource-constrained compression": the action
    is bounded so that the budget is met after the last layer).
    """
    done = sum(b.macs_per_channel * c for b, c in zip(blocks[:t], chosen[:t], strict=True))
    rest = sum(b.macs_per_channel * c for b, c in zip(blocks[t + 1 :], lowest[t + 1 :],
                                                      strict=True))  # fmt: skip
    bound = math.floor((budget_macs - done - rest) / blocks[t].macs_per_channel)
    return max(lowest[t], min(int(wanted), blocks[t].mid_channels, bound))


def _gym() -> Any:
    import gymnasium

    return gymnasium


class ChannelPruningEnv:
    """A gymnasium environment (built on first use, so that importing this module needs no
    gymnasium): use :meth:`make`.

    ``evaluate_policy(kept) -> accuracy %`` prunes, refits and scores a finished policy.
    """

    @staticmethod
    def make(
        blocks: Sequence[PrunableBlock],
        fixed_macs: int,
        target_macs: float,
        evaluate_policy: Callable[[list[int]], float],
        *,
        min_keep: float = 0.2,
        on_episode: Callable[[int, float, list[int]], None] | None = None,
    ) -> Any:
        """The environment. ``on_episode(episode, accuracy, kept)`` is called after each one.

        Raises:
            ConfigError: ``target_macs`` is below the smallest reachable MACs (named) or
                ``min_keep`` is outside (0, 1].
        """
        gym = _gym()
        if not 0.0 < min_keep <= 1.0:
            raise ConfigError(f"min_keep = {min_keep} must be in (0, 1]")
        lowest = min_channels(blocks, min_keep)
        pairs = zip(blocks, lowest, strict=True)
        smallest = fixed_macs + sum(b.macs_per_channel * c for b, c in pairs)
        if target_macs < smallest:
            raise ConfigError(
                f"MACs budget {target_macs:,.0f} is below the smallest this subnet reaches by "
                f"channel pruning ({smallest:,} MACs: every block at {min_keep:.0%} of its "
                f"middle channels, {fixed_macs:,} MACs in layers that are not pruned)"
            )

        class _Env(gym.Env):
            metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's API

            def __init__(self) -> None:
                self.observation_space = gym.spaces.Box(0.0, 1.0, (STATE_SIZE,), np.float32)
                self.action_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
                self.blocks, self.lowest = list(blocks), lowest
                self.budget = target_macs - fixed_macs
                self.static = np.array([[b.index, b.has_se, b.mid_channels, b.in_channels,
                                         b.in_size, b.in_size, b.stride, b.kernel_size, b.macs]
                                        for b in blocks], dtype=np.float64)  # fmt: skip
                self.scale = np.maximum(self.static.max(0), 1.0)
                self.total = float(sum(b.macs for b in blocks))
                self.episode, self.history = 0, []
                self.best: tuple[float, list[int]] | None = None
                self._start()

            def _start(self) -> None:
                self.t, self.kept, self.prev = 0, [], 0.0

            def _obs(self) -> np.ndarray:
                t = self.t
                reduced = sum((b.mid_channels - k) * b.macs_per_channel
                              for b, k in zip(self.blocks, self.kept, strict=False))  # fmt: skip
                rest = sum(b.macs for b in self.blocks[t + 1 :])
                dynamic = [reduced / self.total, rest / self.total, self.prev]
                return np.concatenate([self.static[t] / self.scale, dynamic]).astype(np.float32)

            def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
                super().reset(seed=seed)
                self._start()
                return self._obs(), {}

            def step(self, action: np.ndarray) -> Any:
                block = self.blocks[self.t]
                ratio = float(np.clip(action[0], 0.0, 1.0)) * (1.0 - min_keep)
                wanted = round((1.0 - ratio) * block.mid_channels)
                k = clip_channels(wanted, self.t, self.kept, self.blocks, self.lowest,
                                  self.budget)  # fmt: skip
                self.kept.append(k)
                self.prev = 1.0 - k / block.mid_channels  # the pruning ratio taken
                self.t += 1
                if self.t < len(self.blocks):
                    return self._obs(), 0.0, False, False, {}
                accuracy = float(evaluate_policy(list(self.kept)))
                self.history.append((accuracy, list(self.kept)))
                if self.best is None or accuracy > self.best[0]:
                    self.best = (accuracy, list(self.kept))
                if on_episode is not None:
                    on_episode(self.episode, accuracy, list(self.kept))
                self.episode += 1
                self.t = len(self.blocks) - 1  # the terminal observation repeats the last block
                return self._obs(), accuracy / 100.0, True, False, {"kept": list(self.kept)}

        return _Env()
