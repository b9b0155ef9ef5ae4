"""HAT's latency predictor: an MLP from a SubTransformer's 10 architecture features to its
measured latency on one device.

Features are :meth:`TransformerSpace.encode` (HAT's ``get_config_features``: embedding dims,
layer counts, mean FFN dims, mean head counts, mean arbitrary-attention layer count), each
divided by its value for the space's largest SubTransformer (HAT divides by fixed constants,
``feature-norm: [640, 6, 2048, 6, ...]``, about the largest values of its space). Latency is
divided by a constant ``latency_norm_ms`` (HAT: ``lat-norm`` 200–300 ms; we take the largest
training latency). The network is HAT's: ``Linear(10, 400)`` + ReLU, three ``Linear(400, 400)``
+ ReLU, ``Linear(400, 1)``; trained with Adam on the mean squared error of the normalized
latency, mini-batches of 128 drawn at random, 5,000 steps. HAT's learning rate is 1e-5; on a
few hundred configs (HAT has 2,000) that under-fits here, so the default is 1e-3 (both are
measured in docs/results/hat.md).

Why our own code: HAT's predictor is a dozen lines tied to fairseq's config dicts; the library's
CNN accuracy predictor (:mod:`supernet.predict.accuracy`) sits above ``cost`` and predicts
accuracy, not latency.

Reference: HAT (Wang et al., ACL'20, arXiv 2005.14187), Sec. 3.3 and Fig. 6 (latency predictor
accuracy); released ``latency_predictor.py`` and ``configs/*/latency_predictor/*.yml``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau
from torch import nn

from supernet.checkpoint import load_checkpoint, save_checkpoint
from supernet.cost.transformer_latency import space_from_fields
from supernet.errors import CheckpointError, ConfigError
from supernet.space.transformer import HAT_FEATURES, TransformerSpace
from supernet.space.transformer_config import FAMILY, TransformerConfig

__all__ = [
    "LatencyFit",
    "LatencyPredictorTraining",
    "TransformerLatencyPredictor",
    "fit_latency_predictor",
    "holdout_split",
    "latency_metrics",
]


@dataclass(frozen=True)
class LatencyPredictorTraining:
    """How to fit the latency MLP (HAT's released ``latency_predictor`` config, but ``lr``).

    Attributes:
        hidden_dim: width of the hidden layers (HAT: 400).
        hidden_layers: ``Linear(hidden, hidden)`` layers after the first (HAT: 3).
        steps: Adam steps (HAT: 5,000).
        batch_size: configs per step, drawn at random (HAT: 128).
        lr: Adam learning rate (HAT: 1e-5; see the module docstring).
        seed: seeds the initial weights and the batches.

    Raises:
        ConfigError: a value out of range (named).
    """

    hidden_dim: int = 400
    hidden_layers: int = 3
    steps: int = 5000
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (("hidden_dim", 1), ("hidden_layers", 0), ("steps", 1),
                          ("batch_size", 1), ("seed", 0)):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(
                    f"latency predictor {name} = {value!r} must be an integer >= {low}"
                )
        if not self.lr > 0:
            raise ConfigError(f"latency predictor lr = {self.lr} must be > 0")


def _mlp(features: int, hidden: int, layers: int) -> nn.Sequential:
    modules: list[nn.Module] = [nn.Linear(features, hidden), nn.ReLU()]
    for _ in range(layers):
        modules += [nn.Linear(hidden, hidden), nn.ReLU()]
    modules.append(nn.Linear(hidden, 1))
    return nn.Sequential(*modules)


class TransformerLatencyPredictor:
    """Predicted latency (ms) of SubTransformers of ``space`` on the measured device.

    Attributes:
        space: the space whose :meth:`~TransformerSpace.encode` the MLP reads.
        net: the MLP, features ``[N, 10]`` → normalized latency ``[N, 1]``.
        latency_norm_ms: the MLP predicts latency / this.
        info: plain data saved with it (the dataset's settings and machine, fit metrics).
    """

    def __init__(
        self,
        space: TransformerSpace,
        net: nn.Sequential,
        latency_norm_ms: float,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.space, self.net, self.latency_norm_ms = space, net.eval(), float(latency_norm_ms)
        self.info = dict(info or {})

    @torch.no_grad()
    def predict_ms(self, configs: Sequence[TransformerConfig]) -> np.ndarray:
        """Predicted latency of each config, in ms. Shapes: N configs → ``[N]`` float64.

        Raises:
            ConfigError: a config not of this predictor's space (names both).
        """
        configs = list(configs)
        if not configs:
            return np.zeros(0)
        for c in configs:
            self.space.validate(c)
        x = torch.from_numpy(self.space.encode(configs))
        return self.net(x).squeeze(1).double().numpy() * self.latency_norm_ms

    def __call__(self, configs: Sequence[TransformerConfig]) -> np.ndarray:
        """:meth:`predict_ms` (so the predictor is a batched search objective)."""
        return self.predict_ms(configs)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write weights, space and normalization atomically (:mod:`supernet.checkpoint`).

        Raises:
            CheckpointError: the file cannot be written.
        """
        hidden = self.net[0].out_features
        metadata = {
            "family": FAMILY,
            "kind": "latency-predictor",
            "space": self.space.name,
            "space_fields": dataclasses.asdict(self.space),
            "features": list(HAT_FEATURES),
            "encoding_version": self.space.encoding_version,
            "hidden_dim": hidden,
            "hidden_layers": (len(self.net) - 3) // 2,
            "latency_norm_ms": self.latency_norm_ms,
            "info": self.info,
        }
        save_checkpoint(path, {"state_dict": self.net.state_dict()}, metadata=metadata)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TransformerLatencyPredictor:
        """Read a predictor written by :meth:`save` (``weights_only`` load).

        Raises:
            CheckpointError: unreadable, not a ``hat`` latency predictor, or its weights do not
                fit the saved shape.
        """
        payload, meta = load_checkpoint(path)
        if meta.get("family") != FAMILY or meta.get("kind") != "latency-predictor":
            raise CheckpointError(
                f"{path} is not a {FAMILY!r} latency predictor (family {meta.get('family')!r}, "
                f"kind {meta.get('kind')!r})"
            )
        try:
            space = space_from_fields(meta["space_fields"])
            if meta["encoding_version"] != space.encoding_version:
                raise ConfigError(f"encoding version {meta['encoding_version']} is not "
                                  f"{space.encoding_version}")  # fmt: skip
            net = _mlp(len(HAT_FEATURES), int(meta["hidden_dim"]), int(meta["hidden_layers"]))
            net.load_state_dict(payload["state_dict"])
        except (ConfigError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: saved latency predictor does not fit: {exc}") from exc
        return cls(space, net, float(meta["latency_norm_ms"]), meta.get("info", {}))


def fit_latency_predictor(
    space: TransformerSpace,
    configs: Sequence[TransformerConfig],
    latency_ms: np.ndarray,
    training: LatencyPredictorTraining | None = None,
    *,
    info: dict[str, Any] | None = None,
) -> TransformerLatencyPredictor:
    """Fit HAT's latency MLP on measured ``(config, latency)`` pairs.

    Shapes: N configs and ``latency_ms [N]`` (ms) → a predictor.

    Raises:
        ConfigError: fewer than 2 configs, lengths that differ, a latency that is not a positive
            finite number (names its row), or a config not of ``space``.

    Reference: HAT (arXiv 2005.14187), Sec. 3.3; released ``latency_predictor.py``.
    """
    training = training or LatencyPredictorTraining()
    configs = list(configs)
    y = np.asarray(latency_ms, dtype=np.float64).reshape(-1)
    if len(configs) < 2 or y.shape != (len(configs),):
        raise ConfigError(
            f"need >= 2 configs and one latency each; got {len(configs)} configs and "
            f"{y.size} latencies"
        )
    bad = np.flatnonzero(~np.isfinite(y) | (y <= 0))
    if bad.size:
        raise ConfigError(
            f"latency_ms[{bad[0]}] = {y[bad[0]]} must be a positive number of ms "
            f"({bad.size} bad values)"
        )
    x = torch.from_numpy(space.encode([space.validate(c) for c in configs]))
    norm = float(y.max())
    target = torch.from_numpy(y / norm).float()
    gen = torch.Generator().manual_seed(training.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(training.seed)
        net = _mlp(x.shape[1], training.hidden_dim, training.hidden_layers)
    optimizer = torch.optim.Adam(net.parameters(), lr=training.lr)
    batch = min(training.batch_size, len(configs))
    net.train()
    for _ in range(training.steps):
        rows = torch.randperm(len(configs), generator=gen)[:batch]
        loss = torch.mean((net(x[rows]).squeeze(1) - target[rows]) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return TransformerLatencyPredictor(space, net, norm, info)


@dataclass(frozen=True)
class LatencyFit:
    """A predictor's error on held-out configs.

    Attributes:
        mape_percent: mean absolute percentage error, ``100 * mean(|pred - true| / true)``.
        kendall_tau: Kendall's τ between predicted and measured latency.
        rmse_ms: root mean squared error in ms.
        n: number of held-out configs.
    """

    mape_percent: float
    kendall_tau: float
    rmse_ms: float
    n: int


def latency_metrics(predicted_ms: np.ndarray, measured_ms: np.ndarray) -> LatencyFit:
    """MAPE, Kendall τ and RMSE of predictions. Shapes: ``[N]``, ``[N]`` (ms), N >= 2.

    Raises:
        ConfigError: shapes differ or N < 2.
    """
    p = np.asarray(predicted_ms, dtype=np.float64).reshape(-1)
    m = np.asarray(measured_ms, dtype=np.float64).reshape(-1)
    if p.shape != m.shape or p.size < 2:
        raise ConfigError(f"need two equal-length arrays of >= 2 values; got {p.size}, {m.size}")
    tau = float(kendalltau(p, m).statistic)
    return LatencyFit(
        mape_percent=float(100 * np.mean(np.abs(p - m) / m)),
        kendall_tau=tau,
        rmse_ms=float(np.sqrt(np.mean((p - m) ** 2))),
        n=int(p.size),
    )


def holdout_split(n: int, holdout: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random ``(train, held-out)`` row indices of ``n`` rows, ``holdout`` of them held out.

    Raises:
        ConfigError: ``holdout`` < 1 or it leaves fewer than 2 training rows (names both).
    """
    if holdout < 1 or n - holdout < 2:
        raise ConfigError(
            f"holdout = {holdout} must be >= 1 and leave >= 2 of the {n} configs for training"
        )
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[holdout:]), np.sort(order[:holdout])
