"""Accuracy predictor: an MLP from the Once-for-All architecture encoding to top-1 accuracy.

Reference: Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Sec. 3.4: "a three-layer
feedforward neural network that has 400 hidden units in each layer", trained on [architecture,
accuracy] pairs, whose input is the one-hot kernel size and expand ratio of each block slot (zeros
for slots skipped by depth) and the one-hot resolution; its released ``AccuracyPredictor`` adds a
fixed base accuracy (a non-trainable parameter set to the mean of the collected accuracies) to
the network's output, with the targets as fractions in [0, 1] and no other rescaling.

Beyond the paper (``summary_features``, on by default): the MLP also sees each stage's depth and
the resolution as numbers, both linear functions of the encoding that the L2 penalty would
otherwise make expensive to learn from a few hundred subnets (measured gain in
:func:`train_predictor`); its output is rescaled by the training targets' standard deviation
and its base accuracy is learned. ``summary_features=False`` is the reference predictor's model
and loss: the MLP's output plus a fixed base accuracy (the mean of the training targets), the
MLP fitting accuracies as fractions (scale 100: a unit change to percent, not a rescaling by
the data) with a plain mean squared error. The reference repository publishes no training loop
for it, so the optimizer, epochs and weight decay are this library's (see
:func:`train_predictor`); its base accuracy is the mean over all its collected subnets, ours
over the training split only (the held-out subnets are not seen).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn

from supernet import __version__
from supernet.checkpoint import load_checkpoint, save_checkpoint
from supernet.errors import CheckpointError, ConfigError
from supernet.predict.dataset import AccuracyDataset
from supernet.space.family import ConfigRows, Space

__all__ = [
    "PREDICTOR_FORMAT_VERSION",
    "PREDICTOR_KIND",
    "AccuracyPredictor",
    "PredictorReport",
    "fit_predictor",
    "load_predictor",
    "save_predictor",
    "summary_map",
    "train_predictor",
]

PREDICTOR_KIND = "accuracy-predictor"
PREDICTOR_FORMAT_VERSION = 2
"""Version of the predictor file's payload and metadata; bumped on incompatible changes (2: the
``summary_features`` flag in the metadata; files of version 1 are refused, refit them)."""


def summary_map(space: Space) -> tuple[np.ndarray, np.ndarray]:
    """The linear map from the encoding to the summary features: ``s(x) = x @ matrix + offset``
    (:meth:`Space.summary_map <supernet.space.family.Space.summary_map>`). For the CNN family
    (:func:`supernet.space.encoding.summary_map`): each stage's depth, then the resolution, scaled
    to [0, 1] over the space's choices.

    Shapes: ``matrix`` float32 [F, S] with ``F`` the encoding's features; ``offset`` float32 [S]
    (``S = 0`` for a family without summary features).
    """
    return space.summary_map()


def num_features(space: Space) -> int:
    """Number of features ``F`` of ``space.encode`` (that of its largest config)."""
    return int(space.encode([space.largest()]).shape[1])


class AccuracyPredictor(nn.Module):
    """MLP on the Once-for-All encoding of a space's configs; outputs accuracy in percent points.

    ``forward(x) = mlp([x, s(x)]) * accuracy_scale + base_accuracy``: the hidden layers (Linear +
    ReLU, 400 units each by default) end in a bias-free scalar output. With
    ``summary_features=True`` ``base_accuracy`` is a learned parameter (initialised at the
    training mean) and ``accuracy_scale`` a fixed buffer (the training targets' standard
    deviation), so the MLP itself fits standardized targets; ``s(x)`` are the summary features:
    each stage's depth and the resolution, scaled to [0, 1] over the space's choices, computed
    from the encoding by a fixed linear map (:func:`summary_map`). With
    ``summary_features=False`` it is the reference predictor: the MLP sees ``x`` only,
    ``base_accuracy`` is fixed (``requires_grad=False``, as the reference's ``base_acc``) and
    :func:`train_predictor` sets ``accuracy_scale`` to 100 (the MLP predicts a fraction).

    Shapes: ``forward``: float32 [N, F] -> [N] with ``F = num_features(space)``;
    ``predict_accuracy``: N configs -> float64 [N]; ``predict_encoded``: [N, F] -> float64 [N].

    Raises:
        ConfigError: ``hidden`` is empty or holds a width < 1.

    Reference: Once-for-All (arXiv 1908.09791), Sec. 3.4 (the MLP and its input); the summary
    features are this library's addition.
    """

    def __init__(
        self,
        space: Space,
        *,
        hidden: Sequence[int] = (400, 400, 400),
        base_accuracy: float = 0.0,
        accuracy_scale: float = 1.0,
        summary_features: bool = True,
    ) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1:
            raise ConfigError(f"hidden = {hidden} must be one or more layer widths >= 1")
        self.space = space
        self.hidden = hidden
        self.summary_features = bool(summary_features)
        self.num_features = num_features(space)
        matrix, offset = summary_map(space)
        if not self.summary_features:
            matrix, offset = matrix[:, :0], offset[:0]
        # Derived from the space, so not saved: a predictor file holds the learned tensors only.
        self.register_buffer("summary_matrix", torch.from_numpy(matrix), persistent=False)
        self.register_buffer("summary_offset", torch.from_numpy(offset), persistent=False)
        layers: list[nn.Module] = []
        width = self.num_features + matrix.shape[1]
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        layers.append(nn.Linear(width, 1, bias=False))
        self.mlp = nn.Sequential(*layers)
        # The reference's base accuracy is a parameter that is never trained.
        self.base_accuracy = nn.Parameter(
            torch.tensor(float(base_accuracy)), requires_grad=self.summary_features
        )
        self.register_buffer("accuracy_scale", torch.tensor(float(accuracy_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted accuracy (%) of encoded configs. Shapes: [N, F] -> [N]."""
        if self.summary_features:
            x = torch.cat([x, x @ self.summary_matrix + self.summary_offset], dim=1)
        return self.mlp(x).squeeze(-1) * self.accuracy_scale + self.base_accuracy

    @torch.inference_mode()
    def predict_encoded(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """Predicted accuracy (%) of configs already encoded, in one forward pass.

        Shapes: float [N, F] (``supernet.space.encode`` or a batched encoder's output) ->
        float64 [N].

        Raises:
            ConfigError: ``x`` is not 2-D with ``F`` columns.
        """
        x = torch.as_tensor(x)
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ConfigError(
                f"encoded configs of shape {tuple(x.shape)}; this predictor of space "
                f"{self.space.name!r} takes [N, {self.num_features}]"
            )
        x = x.to(self.base_accuracy.device, torch.float32)
        return self(x).double().cpu().numpy()  # no dropout or BN: train/eval mode agree

    def predict_accuracy(self, configs: Sequence[Any] | ConfigRows) -> np.ndarray:
        """Predicted accuracy (%) of ``configs``, encoded and scored in one batch.

        Shapes: N configs (a sequence or a :class:`ConfigBatch`) -> float64 [N].

        Raises:
            ConfigError: a config is not valid in the predictor's space.
        """
        return self.predict_encoded(self.space.encode(configs))


@dataclass(frozen=True, eq=False)
class PredictorReport:
    """Held-out quality of a predictor.

    ``rmse`` and ``baseline_rmse`` (always predicting the training mean) in accuracy percent
    points; ``kendall_tau`` and ``spearman_rho`` rank correlations between measured and predicted
    accuracy. Shapes: ``measured`` and ``predicted`` float64 [n_holdout], ``holdout_index`` int64
    [n_holdout] (rows of the dataset).
    """

    rmse: float
    kendall_tau: float
    spearman_rho: float
    baseline_rmse: float
    n_train: int
    n_holdout: int
    measured: np.ndarray = field(repr=False)
    predicted: np.ndarray = field(repr=False)
    holdout_index: np.ndarray = field(repr=False)

    def metrics(self) -> dict[str, float | int]:
        """The scalar metrics (saved with the predictor)."""
        return {
            "rmse": self.rmse,
            "kendall_tau": self.kendall_tau,
            "spearman_rho": self.spearman_rho,
            "baseline_rmse": self.baseline_rmse,
            "n_train": self.n_train,
            "n_holdout": self.n_holdout,
        }


def _split(
    configs: Sequence[Any], space: Space, holdout: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out row indices; the space's largest and smallest stay in training."""
    if not 0.0 < holdout < 1.0:
        raise ConfigError(f"holdout = {holdout!r} must be a fraction in (0, 1)")
    n = len(configs)
    anchors = {space.largest(), space.smallest()}
    pool = np.array([i for i, c in enumerate(configs) if c not in anchors], dtype=np.int64)
    n_holdout = min(round(n * holdout), len(pool))
    if n_holdout < 2 or n - n_holdout < 2:
        raise ConfigError(
            f"{n} subnets with holdout = {holdout} leave {n - n_holdout} to train and "
            f"{n_holdout} to test; each needs >= 2 (collect more subnets)"
        )
    test = np.sort(np.random.default_rng(seed).permutation(pool)[:n_holdout])
    return np.setdiff1d(np.arange(n), test), test


def _score(measured: np.ndarray, predicted: np.ndarray, train_mean: float) -> tuple:
    rmse = float(np.sqrt(np.mean((predicted - measured) ** 2)))
    baseline = float(np.sqrt(np.mean((train_mean - measured) ** 2)))
    tau = float(stats.kendalltau(measured, predicted).statistic)
    rho = float(stats.spearmanr(measured, predicted).statistic)
    return rmse, tau, rho, baseline


def fit_predictor(
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    space: Space,
    *,
    epochs: int = 500,
    lr: float = 1e-3,
    weight_decay: float = 1e-1,
    hidden: Sequence[int] = (400, 400, 400),
    summary_features: bool = True,
    seed: int = 0,
) -> AccuracyPredictor:
    """Fit an :class:`AccuracyPredictor` on all of ``x``, ``y`` (no hold-out): the training loop
    of :func:`train_predictor`, which documents it. Returns the predictor in eval mode.

    Shapes: ``x`` float [N, F] (:func:`supernet.space.encode`), ``y`` float [N] accuracy (%).

    Raises:
        ConfigError: fewer than 2 rows, or ``x`` and ``y`` of different lengths.
    """
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y).float().reshape(-1)
    if x.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ConfigError(f"fit on x {tuple(x.shape)} and y {tuple(y.shape)}: need [N, F] and "
                          "[N] with N >= 2")  # fmt: skip
    mean, std = float(y.mean()), float(y.std())
    std = std if std > 1e-6 else 1.0
    if not summary_features:  # the reference: fractions in [0, 1], no rescaling by the data
        std = 100.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        predictor = AccuracyPredictor(
            space,
            hidden=hidden,
            base_accuracy=mean,
            accuracy_scale=std,
            summary_features=summary_features,
        )
    decay = [p for n, p in predictor.named_parameters() if n.endswith("weight")]
    rest = [
        p for n, p in predictor.named_parameters() if not n.endswith("weight") and p.requires_grad
    ]
    optimizer = torch.optim.Adam(
        [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=lr,
    )
    predictor.train()
    for step in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / epochs))
        loss = torch.mean(((predictor(x) - y) / std) ** 2)  # standardized squared error
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return predictor.eval()


def train_predictor(
    dataset: AccuracyDataset,
    space: Space | None = None,
    *,
    holdout: float = 0.2,
    epochs: int = 500,
    lr: float = 1e-3,
    weight_decay: float = 1e-1,
    hidden: Sequence[int] = (400, 400, 400),
    summary_features: bool = True,
    seed: int = 0,
) -> tuple[AccuracyPredictor, PredictorReport]:
    """Fit an :class:`AccuracyPredictor` on ``dataset`` less a random ``holdout``; score the rest.

    The held-out subnets are drawn (with ``seed``) from the dataset's subnets other than the
    space's largest and smallest, which always stay in training: they are single, specially trained
    points (sandwich rule) that nothing else predicts, and search scores subnets like the random
    ones. Full-batch Adam (``lr``; L2 ``weight_decay`` on the weights; cosine decay to 0 over
    ``epochs`` steps) minimizes the mean squared error of standardized accuracy
    (``summary_features=True``) or, for the reference predictor (``summary_features=False``),
    of accuracy as a fraction around the fixed training mean.

    Defaults chosen on ``mbv3-tiny`` Fashion-MNIST (the quick preset's supernet, 2026-12-03,
    ``benches/predictor_study.py``, means over split seeds 0-2): weight decay 1e-1 with the summary
    features gave a held-out RMSE of 0.541 / 0.519 / 0.510 points and Kendall tau 0.539 / 0.662 /
    0.692 with 202 / 402 / 1002 collected subnets, against 0.631 / 0.638 / 0.555 and tau 0.460 /
    0.582 / 0.664 for the paper's MLP at the former weight decay 1e-2.
    The paper's 16K training subnets are out of reach on 2 CPU cores. Initialisation and split
    come from ``seed`` only (global RNGs are left as they were), so a call is reproducible on one
    machine. The predictor returned is the one scored.

    Returns ``(predictor, report)``; report RMSE in accuracy percent points.

    Raises:
        ConfigError: ``holdout`` not in (0, 1), too few subnets for the split, ``epochs`` < 1,
            ``seed`` < 0, ``lr`` <= 0, ``weight_decay`` < 0 (or not finite), or ``space`` other
            than the dataset's.

    Reference: Once-for-All (arXiv 1908.09791), Sec. 3.4.
    """
    space = space or dataset.space
    if space.name != dataset.space.name:
        raise ConfigError(
            f"dataset of space {dataset.space.name!r}, predictor space {space.name!r}"
        )
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"epochs = {epochs!r} must be an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed = {seed!r} must be an integer >= 0")
    if not 0 < lr < math.inf or not 0 <= weight_decay < math.inf:
        raise ConfigError(f"lr = {lr!r} must be > 0 and weight_decay = {weight_decay!r} >= 0")
    x_all = torch.from_numpy(space.encode(list(dataset.configs)))
    y_all = torch.from_numpy(np.asarray(dataset.val_accuracy, dtype=np.float64))
    train_idx, test_idx = _split(dataset.configs, space, holdout, seed)
    predictor = fit_predictor(x_all[train_idx], y_all[train_idx], space, epochs=epochs, lr=lr,
                              weight_decay=weight_decay, hidden=hidden,
                              summary_features=summary_features, seed=seed)  # fmt: skip
    mean = float(y_all[train_idx].float().mean())
    measured = y_all[test_idx].numpy()
    predicted = predictor.predict_encoded(x_all[test_idx])
    rmse, tau, rho, baseline = _score(measured, predicted, mean)
    report = PredictorReport(rmse, tau, rho, baseline, len(train_idx), len(test_idx),
                             measured, predicted, test_idx)  # fmt: skip
    return predictor, report


def _expected_metadata(space: Space) -> dict[str, object]:
    return {
        "kind": PREDICTOR_KIND,
        "predictor_format_version": PREDICTOR_FORMAT_VERSION,
        "space": space.name,
        "encoding_version": space.encoding_version,
        "num_features": num_features(space),
    }


def save_predictor(
    path: str | os.PathLike[str],
    predictor: AccuracyPredictor,
    space: Space,
    report: PredictorReport | None = None,
) -> Path:
    """Write ``predictor`` to ``path`` atomically with what it takes to refuse a wrong load.

    Metadata: kind, predictor format version, space name, encoding version
    (``space.encoding_version``; :data:`supernet.space.ENCODING_VERSION` for CNNs), feature
    count, hidden widths, whether it uses the summary features, library version and the report's
    metrics. Returns the path written.

    Raises:
        ConfigError: the predictor is of another space than ``space``.
        CheckpointError: writing failed (the previous file, if any, is left intact).
    """
    if predictor.space.name != space.name or predictor.num_features != num_features(space):
        raise ConfigError(
            f"predictor of space {predictor.space.name!r} cannot be saved for {space.name!r}"
        )
    metadata = {
        **_expected_metadata(space),
        "hidden": list(predictor.hidden),
        "summary_features": predictor.summary_features,
        "library_version": __version__,
        "metrics": report.metrics() if report is not None else {},
    }
    save_checkpoint(path, {"state_dict": predictor.state_dict()}, metadata=metadata)
    return Path(path)


def load_predictor(path: str | os.PathLike[str], space: Space) -> tuple[AccuracyPredictor, dict]:
    """Load a predictor saved by :func:`save_predictor` for ``space`` (weights-only load).

    The file must be a supernet checkpoint (format version, checksum: see
    :func:`supernet.checkpoint.load_checkpoint`) whose metadata names an accuracy predictor of
    :data:`PREDICTOR_FORMAT_VERSION`, of ``space``'s name, encoding version and feature count;
    its ``hidden`` widths and ``summary_features`` flag must match the shapes of the saved
    weights, which must be finite. A predictor written by another library version loads with a
    logged warning.

    Returns ``(predictor in eval mode on the CPU, metadata)``; ``metadata["metrics"]`` holds the
    held-out metrics it was saved with.

    Raises:
        CheckpointError: missing or corrupt file, not an accuracy predictor, of another
            predictor format version, saved for another space, encoding version or feature count,
            or weights that do not fit its metadata (the message names the file, the field, the
            file's value and the expected one).
    """
    try:
        payload, metadata = load_checkpoint(path, expect=_expected_metadata(space))
    except CheckpointError as exc:
        if "predictor_format_version" not in str(exc):
            raise
        raise CheckpointError(
            f"{exc}; refit it from the run's acc_dataset.csv: supernet predict fit --run-dir RUN"
        ) from exc
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"predictor {path} holds no state_dict of tensors")
    hidden = metadata.get("hidden")
    if (
        not isinstance(hidden, list | tuple)
        or not hidden
        or not all(type(h) is int and h >= 1 for h in hidden)
    ):
        raise CheckpointError(
            f"predictor {path} has hidden = {hidden!r} in its metadata; expected a list of one "
            "or more layer widths >= 1"
        )
    summary = metadata.get("summary_features")
    if type(summary) is not bool:
        raise CheckpointError(
            f"predictor {path} has summary_features = {summary!r} in its metadata; expected "
            "true or false"
        )
    inputs = num_features(space) + (summary_map(space)[0].shape[1] if summary else 0)
    expected = _state_shapes(inputs, hidden)
    found = {k: tuple(v.shape) for k, v in state.items()}
    if found != expected:
        key = next(k for k in sorted({*found, *expected}) if found.get(k) != expected.get(k))
        raise CheckpointError(
            f"predictor {path}: state_dict[{key!r}] has shape {found.get(key)}, its metadata "
            f"(hidden = {list(hidden)}, {num_features(space)} features, summary_features = "
            f"{summary}) needs {expected.get(key)}"
        )
    bad = [k for k, v in state.items() if not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"predictor {path} holds non-finite values in {bad}")
    predictor = AccuracyPredictor(space, hidden=hidden, summary_features=summary)
    try:
        predictor.load_state_dict(state)
    except RuntimeError as exc:  # e.g. a dtype that cannot be copied into float32
        raise CheckpointError(f"predictor {path} does not fit its metadata: {exc}") from exc
    return predictor.eval(), metadata


def _state_shapes(num_inputs: int, hidden: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """Saved parameter and buffer shapes of an :class:`AccuracyPredictor` whose MLP takes
    ``num_inputs`` features (without building one)."""
    shapes: dict[str, tuple[int, ...]] = {}
    width = num_inputs
    for i, h in enumerate(hidden):
        shapes[f"mlp.{2 * i}.weight"] = (h, width)
        shapes[f"mlp.{2 * i}.bias"] = (h,)
        width = h
    shapes[f"mlp.{2 * len(hidden)}.weight"] = (1, width)
    shapes["base_accuracy"] = ()
    shapes["accuracy_scale"] = ()
    return shapes
