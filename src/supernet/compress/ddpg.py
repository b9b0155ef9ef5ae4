"""The DDPG agent that AMC and HAQ share: stable-baselines3's DDPG on a gymnasium environment.

stable-baselines3 (a maintained RL library) provides the actor-critic, the replay buffer and the
target networks; this module only sets the papers' hyperparameters: discount 1 (the reward comes
at the end of an episode and belongs to every step of it), soft target updates τ = 0.01, a
warm-up of random episodes before learning starts, and exploration by a truncated-normal noise
whose σ starts at 0.5 and decays by 0.95 after each episode (AMC, arXiv 1802.03494, Sec. 3.2 /
4; HAQ, arXiv 1811.08886, Sec. 3.4). The actor and critic have two hidden layers of 300 units
as in both papers. Episodes are few here (the papers run 300-600); the best policy seen in any
episode is the one kept, as in the reference code.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from supernet.errors import ConfigError, MissingExtraError

__all__ = ["INSTALL_HINT", "make_noise", "require_rl", "run_ddpg"]

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install -e ".[compress]"  (stable-baselines3, gymnasium)'


def require_rl() -> None:
    """Raise :class:`MissingExtraError` when stable-baselines3 or gymnasium is missing."""
    for name in ("stable_baselines3", "gymnasium"):
        try:
            __import__(name)
        except ImportError as exc:
            raise MissingExtraError(
                f"AMC and HAQ need the {name!r} package; install the compress extra: {INSTALL_HINT}"
            ) from exc


def make_noise(sigma: float, decay: float, size: int, seed: int) -> Any:
    """Gaussian exploration noise (a stable-baselines3 ``ActionNoise``) whose σ is multiplied
    by ``decay`` after every episode (stable-baselines3 calls ``reset`` at episode ends).

    stable-baselines3 clips the noisy action to the action space's bounds, which truncates
    the distribution as the papers do. Defined here because the library's noises keep σ fixed.

    Reference: AMC, arXiv 1802.03494, Sec. 4 (σ = 0.5, decay 0.95 per episode).
    """
    from stable_baselines3.common.noise import ActionNoise

    class DecayingNormalNoise(ActionNoise):
        def __init__(self) -> None:
            super().__init__()
            self.sigma = sigma
            self.rng = np.random.default_rng(seed)

        def __call__(self) -> np.ndarray:
            return self.rng.normal(0.0, self.sigma, size).astype(np.float32)

        def reset(self) -> None:
            self.sigma *= decay

    return DecayingNormalNoise()


def run_ddpg(
    env: Any,
    *,
    episodes: int,
    steps_per_episode: int,
    seed: int,
    warmup_episodes: int | None = None,
    hidden: int = 300,
) -> Any:
    """Train stable-baselines3's DDPG on ``env`` for ``episodes`` episodes; returns the agent.

    ``env`` keeps its own record of the best episode (the environments of :mod:`amc` and
    :mod:`haq` do). ``warmup_episodes`` (default: a quarter of ``episodes``, at least 1) act
    at random before the agent learns.

    Raises:
        ConfigError: ``episodes`` < 1.
        MissingExtraError: stable-baselines3 / gymnasium are not installed.

    Reference: Lillicrap et al., ICLR'16 (arXiv 1509.02971), DDPG; AMC Sec. 3.2; HAQ Sec. 3.4.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ConfigError(f"episodes = {episodes!r} must be an integer >= 1")
    require_rl()
    import torch
    from stable_baselines3 import DDPG

    warmup = max(1, episodes // 4) if warmup_episodes is None else warmup_episodes
    noise = make_noise(0.5, 0.95, int(np.prod(env.action_space.shape)), seed)
    agent = DDPG(
        "MlpPolicy",
        env,
        learning_rate=1e-3,
        buffer_size=max(1000, episodes * steps_per_episode),
        learning_starts=warmup * steps_per_episode,
        batch_size=64,
        tau=0.01,
        gamma=1.0,
        train_freq=(1, "episode"),
        gradient_steps=-1,
        action_noise=noise,
        policy_kwargs={"net_arch": [hidden, hidden]},
        seed=seed,
        device="cpu",
        verbose=0,
    )
    threads = torch.get_num_threads()
    try:
        agent.learn(total_timesteps=episodes * steps_per_episode)
    finally:
        torch.set_num_threads(threads)  # stable-baselines3 may change the thread count
    return agent
