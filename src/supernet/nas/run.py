"""A whole ProxylessNAS run in one directory: search → α-history plot → retrain → export.

``RUN/`` holds ``proxyless.json`` (the settings), ``search.pt`` / ``retrain.pt`` (checkpoints),
``search.csv`` / ``retrain.csv`` (per-epoch rows), ``arch.json`` (the derived arch config, its
expected and table-predicted latency), ``alpha_history.png``, ``export/`` (ONNX, TorchScript and
``subnet.json`` of the retrained subnet, as ``supernet specialize`` writes them) and
``result.json``. A resumed run continues from the checkpoints; a finished stage is not redone.

Reference: ProxylessNAS (Cai, Zhu, Han; ICLR'19; arXiv 1812.00332), Sec. 3-4.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supernet.checkpoint import write_text_atomic
from supernet.cost.lut import LatencyTable
from supernet.data import load_dataset
from supernet.errors import ConfigError, RunDirError
from supernet.nas.config import ProxylessConfig
from supernet.nas.latency import LatencyModel
from supernet.nas.network import candidate_ops
from supernet.nas.plot import plot_alpha_history
from supernet.nas.retrain import RetrainResult, retrain
from supernet.nas.search import SEARCH_CHECKPOINT, SearchReporter, SearchResult, search
from supernet.runtime import detect_runtime
from supernet.space import describe, get_space
from supernet.train.rundir import write_csv_atomic

__all__ = ["CONFIG_FILE", "ProxylessRun", "run_proxyless"]

CONFIG_FILE = "proxyless.json"


@dataclass
class ProxylessRun:
    """What a run found and measured (see the module doc for the files)."""

    run_dir: Path
    search: SearchResult
    retrain: RetrainResult
    export_dir: Path | None
    summary: dict[str, Any]


def _prepare(run_dir: Path, config: ProxylessConfig, resume: bool) -> None:
    """Refuse to overwrite a run, or to resume one with other settings; write the settings."""
    saved = run_dir / CONFIG_FILE
    if saved.is_file():
        if not resume:
            raise RunDirError(f"{str(run_dir)!r} already holds a ProxylessNAS run; continue it "
                              "with --resume or choose another --run-dir")  # fmt: skip
        old = ProxylessConfig.from_dict(json.loads(saved.read_text(encoding="utf-8")))
        differ = old.differences(config)
        if differ:
            raise ConfigError(f"{str(run_dir)!r} was run with other settings ({differ}: "
                              f"{[getattr(old, k) for k in differ]}); resume it with the same "
                              "ones")  # fmt: skip
        return
    if resume:
        raise RunDirError(f"--resume: {str(run_dir)!r} holds no ProxylessNAS run to continue")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise RunDirError(f"{str(run_dir)!r} exists and is not empty; choose another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(saved, json.dumps(config.to_dict(), indent=1) + "\n")


def run_proxyless(
    config: ProxylessConfig,
    run_dir: str | Path,
    table: LatencyTable,
    *,
    resume: bool = False,
    reporter: SearchReporter | None = None,
    export: bool = True,
    measure_repeats: int = 0,
) -> ProxylessRun:
    """Search, retrain and export in ``run_dir`` (module doc); return the results.

    Args:
        table: latency table of ``config.space`` (any device; its entries price every op).
        measure_repeats: > 0: also time the derived subnet on this machine with the table's
            runtime, threads and batch size (median of that many repeats, ms).

    Raises:
        LatencyTableError: the table is for another space, or lacks an entry.
        ConfigError: target latency outside the space's fastest/slowest path (both named);
            resuming with other settings; an unknown or absent torch device.
        RunDirError: ``run_dir`` holds another run (without ``resume``), or none (with it).
        DataNotFoundError: the dataset is not installed.
    """
    run_dir = Path(run_dir)
    splits = load_dataset(config.dataset)
    space = get_space(config.space, num_classes=splits.num_classes)
    latency = LatencyModel.from_table(table, space, config.search_resolution())
    latency.check_target(config.target_latency_ms)  # before anything is written
    detect_runtime(config.device, amp=False)  # an unknown or absent device fails here too
    _prepare(run_dir, config, resume)
    found = search(config, splits, latency, run_dir, reporter=reporter,
                   resume=resume and (run_dir / SEARCH_CHECKPOINT).is_file())  # fmt: skip
    write_csv_atomic(run_dir / "search.csv", found.metrics)
    plot_alpha_history(found.history, candidate_ops(space), run_dir / "alpha_history.png",
                       title=f"ProxylessNAS on {config.dataset}, target "
                       f"{config.target_latency_ms:g} ms")  # fmt: skip
    arch = {"config": found.config.to_dict(), "describe": describe(found.config),
            "expected_latency_ms": found.expected_latency_ms,
            "predicted_latency_ms": found.predicted_latency_ms,
            "target_latency_ms": config.target_latency_ms}  # fmt: skip
    write_text_atomic(run_dir / "arch.json", json.dumps(arch, indent=1) + "\n")
    trained = retrain(config, found.config, splits, run_dir, resume=resume, reporter=reporter)
    write_csv_atomic(run_dir / "retrain.csv", trained.metrics)
    summary = {
        **arch,
        "test_accuracy": round(trained.test_accuracy, 3),
        "test_images": trained.test_images,
        "search_seconds": round(found.seconds, 1),
        "retrain_seconds": round(trained.seconds, 1),
        "table_device": table.device.name,
        "measured_latency_ms": None,
    }
    if measure_repeats > 0:
        from supernet.cost.lut_build import measure_subnets

        [m] = measure_subnets(space, [found.config], table.device, repeats=measure_repeats)
        summary["measured_latency_ms"] = m.median_ms
    export_dir = None
    if export:
        from supernet.export import export_subnet

        export_dir = run_dir / "export"
        meta = {k: summary[k] for k in ("test_accuracy", "predicted_latency_ms",
                                        "measured_latency_ms", "target_latency_ms")}  # fmt: skip
        meta["normalization"] = {"mean": list(splits.train.mean), "std": list(splits.train.std)}
        export_subnet(trained.model, found.config, space, export_dir, metadata=meta)
    write_text_atomic(run_dir / "result.json", json.dumps(summary, indent=1) + "\n")
    return ProxylessRun(run_dir, found, trained, export_dir, summary)
