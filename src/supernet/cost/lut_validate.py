"""Validating a latency lookup table: measured vs predicted latency of held-out subnets.

Random subnets are measured with the table's runtime, threads and batch size and compared with
its predictions (mean absolute percentage error, Kendall's τ). The table's fit subnets, timed when
it was built, are timed again alongside to measure how much the machine's speed has drifted since.

Reference: Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), App. (latency predictor check).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from supernet.cost.lut import LatencyTable
from supernet.cost.lut_build import ProgressFn, check_settings, measure_subnets, torch_memory_format
from supernet.errors import ConfigError, LatencyTableError
from supernet.space import ArchConfig, SearchSpace

__all__ = ["LatencyValidation", "measure_speed_ratio", "validate_latency_table"]


@dataclass(frozen=True)
class LatencyValidation:
    """Predicted vs measured latency of held-out random subnets.

    Attributes:
        configs: the measured subnets.
        predicted_ms: ``[N]`` table predictions, in ms.
        measured_ms: ``[N]`` medians measured now, in ms.
        mape_percent: mean absolute percentage error, ``100 * mean(|pred - meas| / meas)``.
        kendall_tau: Kendall's τ-b rank correlation of predicted and measured.
        speed_ratio: the machine's speed drift since the table was built: the median over the
            table's fit subnets of (latency measured now, round-robin with the validation
            subnets) / (latency measured at build time). Above 1: slower now. ``None`` when the
            drift check was off or the table stores no fit subnets.
        drift_corrected_mape_percent: MAPE of ``speed_ratio * predicted`` against the
            measurements: the table's error with the machine's drift taken out (``None`` with
            ``speed_ratio``).
    """

    configs: list[ArchConfig]
    predicted_ms: np.ndarray
    measured_ms: np.ndarray
    mape_percent: float
    kendall_tau: float
    speed_ratio: float | None = None
    drift_corrected_mape_percent: float | None = None


def _fit_subnets(table: LatencyTable) -> tuple[list[ArchConfig], np.ndarray]:
    """The whole subnets a table's overhead was fitted on and their latencies then (ms); empty
    when the table stores none.

    Raises:
        LatencyTableError: ``build.fit`` is there but malformed (names what is wrong).
    """
    fit = table.build.get("fit")
    if not fit:
        return [], np.zeros(0)
    try:
        configs = [ArchConfig.from_dict(c).validate(table.space) for c in fit["configs"]]
        measured = np.asarray(fit["measured_ms"], dtype=np.float64)
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise LatencyTableError(f"the latency table's build.fit is malformed: {exc}") from exc
    if measured.shape != (len(configs),) or not (np.isfinite(measured) & (measured > 0)).all():
        raise LatencyTableError(
            f"the latency table's build.fit has {len(configs)} configs but measured_ms of shape "
            f"{measured.shape} (must be one finite latency > 0 per config, ms)"
        )
    return configs, measured


def _mape(predicted: np.ndarray, measured: np.ndarray) -> float:
    return float(100 * np.mean(np.abs(predicted - measured) / measured))


def validate_latency_table(
    table: LatencyTable,
    space: SearchSpace | None = None,
    *,
    n: int = 50,
    seed: int = 1,
    repeats: int | None = None,
    warmup: int | None = None,
    drift_check: bool = True,
    progress: ProgressFn | None = None,
) -> LatencyValidation:
    """Measure ``n`` random subnets with the table's device settings and compare to predictions.

    ``seed`` should differ from the build seed (default 0) so the subnets are held out.

    With ``drift_check`` the table's fit subnets (measured when it was built) are measured again,
    round-robin with the validation subnets, and the median ratio now / then is reported as
    :attr:`LatencyValidation.speed_ratio`: a table predicts absolute latency at the machine's
    speed when it was built, so a machine that has since become faster or slower (frequency
    scaling, a busy host) shows up as MAPE that is not the table's. The MAPE with that ratio
    taken out is reported beside the plain one, never instead of it.

    Shapes: ``n`` subnets → ``[n]`` arrays in ms.

    Raises:
        LatencyTableError: ``space`` is not the table's space, an entry is missing, or the
            table's stored fit subnets are malformed (with ``drift_check``).
        ConfigError: ``n`` < 2, ``seed`` < 0, ``repeats`` < 1 or ``warmup`` < 0.

    Reference: the Once-for-All latency predictor check (arXiv 1908.09791, App.).
    """
    from scipy.stats import kendalltau  # scipy.stats takes ~0.6 s to import

    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ConfigError(f"n = {n!r} must be an integer >= 2 (Kendall's tau needs two subnets)")
    check_settings(seed=seed, repeats=repeats, warmup=warmup)
    space = space or table.space
    table.check_space(space)
    rng = np.random.default_rng(seed)
    configs = [space.sample(rng) for _ in range(n)]
    predicted = table.predict(configs)
    fit_configs, fit_then = _fit_subnets(table) if drift_check else ([], np.zeros(0))
    results = measure_subnets(
        space,
        configs + fit_configs,
        table.device,
        repeats=repeats or int(table.build.get("repeats", 15)),
        warmup=warmup if warmup is not None else int(table.build.get("warmup", 5)),
        memory_format=torch_memory_format(table.memory_format),
        progress=progress,
    )
    measured = np.array([r.median_ms for r in results[:n]])
    tau = float(kendalltau(predicted, measured).statistic)
    ratio = corrected = None
    if fit_configs:
        fit_now = np.array([r.median_ms for r in results[n:]])
        ratio = float(np.median(fit_now / fit_then))
        corrected = _mape(ratio * predicted, measured)
    return LatencyValidation(configs, predicted, measured, _mape(predicted, measured), tau,
                             ratio, corrected)  # fmt: skip


def measure_speed_ratio(
    table: LatencyTable,
    *,
    repeats: int | None = None,
    warmup: int | None = None,
    progress: ProgressFn | None = None,
) -> float | None:
    """How much slower (> 1) or faster (< 1) this machine runs than when ``table`` was built.

    The table's fit subnets (whole subnets timed at build time, stored in ``build.fit``) are
    timed again with the table's device settings; the ratio is the median of now / then. A
    search multiplies the table's predictions by it, so budgets in ms hold at the machine's
    speed now (the drift check of :func:`validate_latency_table`, without its held-out subnets).

    Returns None when the table stores no fit subnets.

    Raises:
        LatencyTableError: the stored fit subnets are malformed.
        ConfigError: ``repeats`` < 1 or ``warmup`` < 0.
    """
    check_settings(seed=0, repeats=repeats, warmup=warmup)
    configs, then = _fit_subnets(table)
    if not configs:
        return None
    results = measure_subnets(
        table.space,
        configs,
        table.device,
        repeats=repeats or int(table.build.get("repeats", 15)),
        warmup=warmup if warmup is not None else int(table.build.get("warmup", 5)),
        memory_format=torch_memory_format(table.memory_format),
        progress=progress,
    )
    now = np.array([r.median_ms for r in results])
    return float(np.median(now / then))
