"""One transfer-learning run, or all methods compared, written to one folder.

``run_transfer`` loads a trained supernet run, the target dataset and the subnet (named, an
``ArchConfig`` JSON, or chosen by :mod:`~supernet.transfer.adapt`), then for each job (a method,
and in a comparison the 8-bit-vs-fp32 frozen-weight and batch-1 variants of ``tinytl-l+b``):
builds the transfer model, models its training memory (:func:`training_memory`), measures one
real training step (:func:`measure_training_memory`), trains it with the recipe
(:func:`train_transfer`) and records a :class:`TransferRow`. After every job the rows are
rewritten to ``transfer.json`` (with the settings) and ``transfer.csv``, so a killed comparison
continues where it stopped: jobs already recorded under the same settings are skipped unless
``force``. The markdown table and plot are the report layer's (:mod:`supernet.report.transfer`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supernet.checkpoint import write_text_atomic
from supernet.data import BatchLoader, resize
from supernet.errors import ConfigError
from supernet.space import ArchConfig, SearchSpace
from supernet.train import load_run
from supernet.train.rundir import write_csv_atomic
from supernet.transfer.adapt import Adaptation, Progress, adapt_feature_extractor, prepare_subnet
from supernet.transfer.measure import measure_training_memory
from supernet.transfer.memory import training_memory
from supernet.transfer.methods import METHODS, check_method
from supernet.transfer.recipe import (
    TransferConfig,
    TransferReporter,
    build_configured_model,
    train_transfer,
)
from supernet.transfer.targets import TransferTarget, load_target

__all__ = [
    "NAMED_SUBNETS",
    "RESULTS_CSV",
    "RESULTS_JSON",
    "TransferJob",
    "TransferOutcome",
    "TransferRow",
    "plan_jobs",
    "resolve_subnet",
    "run_transfer",
]

NAMED_SUBNETS = ("largest", "smallest", "middle", "adapt")
RESULTS_JSON = "transfer.json"
RESULTS_CSV = "transfer.csv"
CANDIDATES_CSV = "candidates.csv"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class TransferJob:
    """One row to produce: ``key`` is ``method`` or ``method/variant`` (``fp32-frozen``,
    ``int8-frozen``, ``batch-1``)."""

    key: str
    method: str
    variant: str
    config: TransferConfig


@dataclass(frozen=True)
class TransferRow:
    """The result of one job. Bytes are at the row's batch size ``B``.

    Attributes:
        paper_activation_bytes / paper_param_bytes / paper_total_bytes: TinyTL's ``B·A``, ``P``
            and ``B·A + P``.
        full_total_bytes: the full accounting (peak activations + parameters as stored +
            gradients + Adam state).
        modelled_bytes: modelled saved-for-backward bytes + parameter storage + gradients +
            optimizer state — the quantity measured.
        measured_*: one real training step (saved activations, parameters, gradients, Adam
            state; their sum ``measured_total_bytes``).
        measured_over_modelled: ``measured_total_bytes / modelled_bytes``.
        measured_peak_step_bytes: the real peak of that step's own allocations
            (:class:`~supernet.transfer.measure.MeasuredMemory`; ``None`` in rows recorded before
            it was measured).
    """

    key: str
    method: str
    variant: str
    batch_size: int
    epochs: int
    lr: float
    quantize_frozen: bool
    efficient: bool
    trainable_params: int
    frozen_params: int
    val_accuracy: float
    test_accuracy: float
    test_loss: float
    final_train_loss: float
    paper_activation_bytes: int
    paper_param_bytes: int
    paper_total_bytes: int
    full_total_bytes: int
    modelled_saved_bytes: int
    modelled_bytes: int
    measured_saved_bytes: int
    measured_param_bytes: int
    measured_grad_bytes: int
    measured_optimizer_bytes: int
    measured_total_bytes: int
    measured_over_modelled: float
    steps: int
    train_seconds: float
    measured_peak_step_bytes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The row as plain values (one CSV line)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransferRow:
        """Inverse of :meth:`as_dict`.

        Raises:
            ConfigError: missing or unknown fields.
        """
        fields = dataclasses.fields(cls)
        names = {f.name for f in fields}
        required = {f.name for f in fields if f.default is dataclasses.MISSING}
        if not required <= set(data) <= names:
            raise ConfigError(f"a transfer row has fields {sorted(data)}; expected {sorted(names)}")
        return cls(**data)


@dataclass(frozen=True)
class TransferOutcome:
    """What :func:`run_transfer` did: every recorded row (earlier ones included), in job order."""

    out_dir: Path
    settings: dict[str, Any]
    target: TransferTarget
    config: ArchConfig
    adaptation: Adaptation | None
    rows: tuple[TransferRow, ...]
    ran: tuple[str, ...]
    skipped: tuple[str, ...]


def plan_jobs(
    methods: tuple[str, ...] | list[str],
    recipe: TransferConfig,
    *,
    frozen_precision: bool = False,
    batch_one: bool = False,
) -> list[TransferJob]:
    """Jobs for ``methods`` (recipe with each method), plus ``tinytl-l+b`` with the other
    frozen-weight precision (``frozen_precision``: fp32 when the recipe quantizes, else 8-bit)
    and ``tinytl-l+b`` at batch size 1 (``batch_one``) with the learning rate scaled by
    ``sqrt(1 / batch_size)`` — the square-root scaling rule for Adam (Malladi, Lyu, Panigrahi,
    Arora, "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms", NeurIPS'22,
    arXiv 2205.10287, Sec. 4).

    Raises:
        ConfigError: an unknown method (the known ones listed) or an empty ``methods``.
    """
    if not methods:
        raise ConfigError(f"no method given; choose from {METHODS}")
    jobs = [TransferJob(check_method(m), m, "", dataclasses.replace(recipe, method=m))
            for m in dict.fromkeys(methods)]  # fmt: skip
    lb = dataclasses.replace(recipe, method="tinytl-l+b")
    if frozen_precision:
        variant = "fp32-frozen" if recipe.quantize_frozen else "int8-frozen"
        config = dataclasses.replace(lb, quantize_frozen=not recipe.quantize_frozen)
        jobs.append(TransferJob(f"tinytl-l+b/{variant}", "tinytl-l+b", variant, config))
    if batch_one and recipe.batch_size != 1:
        lr = lb.learning_rate / math.sqrt(recipe.batch_size)
        jobs.append(TransferJob("tinytl-l+b/batch-1", "tinytl-l+b", "batch-1",
                                dataclasses.replace(lb, batch_size=1, lr=lr)))  # fmt: skip
    return jobs


def resolve_subnet(space: SearchSpace, text: str) -> ArchConfig | None:
    """``largest`` / ``smallest`` / ``middle`` → that config; ``adapt`` → ``None`` (chosen by
    adaptation); else JSON text or a JSON file of an :class:`ArchConfig`.

    Raises:
        ConfigError: none of these, or a config not valid in ``space``.
    """
    if text == "adapt":
        return None
    if text in NAMED_SUBNETS:
        return getattr(space, text)()
    if text.lstrip().startswith("{"):
        return ArchConfig.from_json(text).validate(space)
    if Path(text).is_file():
        return ArchConfig.from_json(Path(text).read_text()).validate(space)
    raise ConfigError(f"subnet = {text!r} is not one of {NAMED_SUBNETS}, a JSON file or JSON text")


def _measure_batch(target: TransferTarget, batch_size: int, resolution: int, device):
    loader = BatchLoader(target.splits.train, batch_size, shuffle=False, augment=False)
    x, y = next(iter(loader))
    return resize(x, resolution).to(device), y.to(device)


def _run_job(job: TransferJob, subnet, target: TransferTarget, resolution: int, device,
             reporter: TransferReporter | None) -> TransferRow:  # fmt: skip
    c = job.config
    model = build_configured_model(subnet, target.num_classes, c, resolution=resolution)
    b = c.batch_size
    report = training_memory(model, batch_size=b, resolution=resolution)
    x, y = _measure_batch(target, b, resolution, device)
    measured = measure_training_memory(model, x, y, lr=c.learning_rate)
    modelled_saved = report.saved_total_bytes(b)
    modelled = modelled_saved + report.param_storage_bytes + report.grad_bytes \
        + report.optimizer_bytes  # fmt: skip
    result = train_transfer(model, target.splits, c, resolution=resolution, device=device,
                            label=job.key, reporter=reporter)  # fmt: skip
    return TransferRow(
        key=job.key, method=job.method, variant=job.variant, batch_size=b, epochs=c.epochs,
        lr=c.learning_rate, quantize_frozen=c.quantize_frozen, efficient=c.efficient,
        trainable_params=report.trainable_params, frozen_params=report.frozen_params,
        val_accuracy=result.val_accuracy, test_accuracy=result.test_accuracy,
        test_loss=result.test_loss, final_train_loss=result.history[-1]["train_loss"],
        paper_activation_bytes=b * report.activation_bytes, paper_param_bytes=report.param_bytes,
        paper_total_bytes=report.paper_total_bytes(b), full_total_bytes=report.full_total_bytes(b),
        modelled_saved_bytes=modelled_saved, modelled_bytes=modelled,
        measured_saved_bytes=measured.saved_activation_bytes,
        measured_param_bytes=measured.param_storage_bytes, measured_grad_bytes=measured.grad_bytes,
        measured_optimizer_bytes=measured.optimizer_bytes,
        measured_total_bytes=measured.total_bytes,
        measured_over_modelled=measured.total_bytes / modelled if modelled else float("nan"),
        steps=result.steps, train_seconds=result.train_seconds,
        measured_peak_step_bytes=measured.peak_step_bytes,
    )  # fmt: skip


def _load_rows(out_dir: Path, settings: dict[str, Any], force: bool) -> dict[str, TransferRow]:
    path = out_dir / RESULTS_JSON
    if force or not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text())
        rows = [TransferRow.from_dict(r) for r in saved["rows"]]
        # results written before the option existed were made without it
        saved["settings"]["recipe"].setdefault("lite_residual_everywhere", False)
        same = saved["settings"] == settings
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not a transfer result ({exc}); pass force to start over"
        ) from exc
    if not same:
        differ = sorted(k for k in settings if saved["settings"].get(k) != settings[k])
        raise ConfigError(
            f"{out_dir} holds results of other settings (differ: {', '.join(differ)}); use "
            "another output folder, or force to discard them"
        )
    return {r.key: r for r in rows}


def _write(out_dir: Path, settings: dict[str, Any], rows: list[TransferRow],
           adaptation: Adaptation | None) -> None:  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"format_version": FORMAT_VERSION, "settings": settings,
               "rows": [r.as_dict() for r in rows]}  # fmt: skip
    if adaptation is not None:
        payload["candidates"] = [c.as_dict() for c in adaptation.candidates]
    write_text_atomic(out_dir / RESULTS_JSON, json.dumps(payload, indent=1) + "\n")
    if rows:
        write_csv_atomic(out_dir / RESULTS_CSV, [r.as_dict() for r in rows])


def run_transfer(
    run_dir: str | Path,
    *,
    target: str = "digits",
    methods: tuple[str, ...] | list[str] = ("tinytl-l+b",),
    subnet: str = "largest",
    recipe: TransferConfig | None = None,
    memory_budget: int | None = None,
    adapt_samples: int = 8,
    frozen_precision: bool = False,
    batch_one: bool = False,
    convert_channels: bool = False,
    out_dir: str | Path | None = None,
    force: bool = False,
    device: str = "cpu",
    reporter: TransferReporter | None = None,
    progress: Progress | None = None,
) -> TransferOutcome:
    """Transfer a subnet of the supernet in ``run_dir`` to ``target`` with each of ``methods``
    (see the module docstring) and record the rows in ``out_dir`` (default
    ``RUN_DIR/transfer/TARGET``).

    ``recipe``'s method picks the adaptation's memory model (``subnet="adapt"``); each job
    replaces it with its own. ``memory_budget`` (bytes, paper accounting) needs
    ``subnet="adapt"``. ``progress(done, total, what)`` follows the adaptation's candidates.

    Raises:
        ConfigError: unknown method / target / subnet, a budget without ``adapt``, or an
            ``out_dir`` holding results of other settings (without ``force``).
        SearchError: no adaptation candidate fits the budget (smallest need named).
        RunDirError, CheckpointError, DataNotFoundError: the run or its data cannot be loaded.

    Reference: TinyTL (Cai et al., NeurIPS'20, arXiv 2007.11622), Sec. 3-4.
    """
    recipe = recipe or TransferConfig()
    jobs = plan_jobs(methods, recipe, frozen_precision=frozen_precision, batch_one=batch_one)
    run = load_run(run_dir, device=device)
    config = resolve_subnet(run.space, subnet)
    if memory_budget is not None and config is not None:
        raise ConfigError(f"a memory budget needs subnet 'adapt', not {subnet!r}")
    source = run.splits.train
    data = load_target(target, input_size=run.splits.input_size,
                       input_channels=run.space.input_channels, mean=source.mean,
                       std=source.std, convert_channels=convert_channels)  # fmt: skip
    adaptation = None
    if config is None:
        adaptation = adapt_feature_extractor(
            run.supernet, run.space, data.splits, recipe.method, batch_size=recipe.batch_size,
            memory_budget=memory_budget, samples=adapt_samples, seed=recipe.seed,
            device=run.device, progress=progress,
        )  # fmt: skip
        config = adaptation.chosen.config
    out_dir = Path(out_dir) if out_dir is not None else Path(run_dir) / "transfer" / data.short_name
    settings = {"run_dir": str(Path(run_dir).resolve()), "target": target, "subnet": subnet,
                "config": config.to_dict(), "memory_budget_bytes": memory_budget,
                "adapt_samples": adapt_samples if adaptation else None,
                "convert_channels": convert_channels,
                "recipe": {k: v for k, v in dataclasses.asdict(recipe).items()
                           if k not in ("method", "batch_size", "quantize_frozen")},
                "batch_size": recipe.batch_size,
                "quantize_frozen": recipe.quantize_frozen}  # fmt: skip
    settings = json.loads(json.dumps(settings))  # as read back from disk
    done = _load_rows(out_dir, settings, force)
    if adaptation is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_csv_atomic(out_dir / CANDIDATES_CSV, [c.as_dict() for c in adaptation.candidates])
    base = prepare_subnet(run.supernet, config, data.splits.train, device=run.device)
    ran, skipped = [], []
    for job in jobs:
        if job.key in done:
            skipped.append(job.key)
            continue
        done[job.key] = _run_job(job, base, data, config.resolution, run.device, reporter)
        ran.append(job.key)
        _write(out_dir, settings, list(done.values()), adaptation)
    _write(out_dir, settings, list(done.values()), adaptation)
    order = [j.key for j in jobs]
    rows = sorted(done.values(), key=lambda r: order.index(r.key) if r.key in order else len(order))
    return TransferOutcome(out_dir, settings, data, config, adaptation, tuple(rows), tuple(ran),
                           tuple(skipped))  # fmt: skip
