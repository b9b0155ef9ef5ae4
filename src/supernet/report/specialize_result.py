"""What ``supernet specialize`` returns: one result per device (specialized or infeasible) and
the whole call's result, each with the flat row ``specialize.csv`` and ``report.md`` show."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supernet.report.mcu_deploy import MCU_ROW_KEYS, McuDeployment, mcu_row
from supernet.space import ArchConfig

__all__ = ["DEVICE_ROW_KEYS", "DeviceResult", "InfeasibleDevice", "SpecializeResult"]

DEVICE_ROW_KEYS = (
    "device", "runtime", "constraints", "config", "predicted_val_acc", "test_acc",
    "random_test_acc_max", "macs", "params", "peak_memory_bytes", "model_size_bytes",
    "predicted_latency_ms", "measured_latency_ms", "meets_constraints", "onnx_max_abs_diff",
    "search_seconds", "note", *MCU_ROW_KEYS,
)  # fmt: skip
"""Columns of ``specialize.csv`` (:meth:`DeviceResult.row`)."""


@dataclass
class DeviceResult:
    """What one device got. Accuracy in %, latency in ms, memory and size in bytes.

    ``meets`` maps each constraint to whether the *measured* cost meets it (latency measured on
    this machine; MACs, params, memory exact; int8 SRAM / Flash as TFLM's arena and the
    ``.tflite`` size, in ``mcu``). ``baseline_test_accuracy`` holds the test accuracy
    of random subnets no more costly than ``config`` on any constrained objective.
    """

    device: str
    runtime: str
    constraints: dict[str, float]
    config: ArchConfig
    predicted_accuracy: float
    test_accuracy: float
    macs: int
    params: int
    peak_memory_bytes: int
    model_size_bytes: int
    predicted_latency_ms: float | None
    measured_latency_ms: float
    meets: dict[str, bool]
    export_dir: Path
    onnx_max_abs_diff: float
    search_seconds: float
    candidates_scored: int
    baseline_test_accuracy: list[float] = field(default_factory=list)
    mcu: McuDeployment | None = None  # int8 devices: quantized, exported, run in TFLM

    def row(self) -> dict[str, Any]:
        """A flat dict for CSV and markdown tables."""
        base = self.baseline_test_accuracy
        return {
            "device": self.device,
            "runtime": self.runtime,
            "constraints": "; ".join(f"{k}={v:g}" for k, v in self.constraints.items()),
            "config": self.config.to_json(),
            "predicted_val_acc": round(self.predicted_accuracy, 2),
            "test_acc": round(self.test_accuracy, 2),
            "random_test_acc_max": round(max(base), 2) if base else "",
            "macs": self.macs,
            "params": self.params,
            "peak_memory_bytes": self.peak_memory_bytes,
            "model_size_bytes": self.model_size_bytes,
            "predicted_latency_ms": ""
            if self.predicted_latency_ms is None
            else round(self.predicted_latency_ms, 4),
            "measured_latency_ms": round(self.measured_latency_ms, 4),
            "meets_constraints": all(self.meets.values()),
            "onnx_max_abs_diff": f"{self.onnx_max_abs_diff:.2e}",
            "search_seconds": round(self.search_seconds, 2),
            "note": "",
            **mcu_row(self.mcu),
        }


@dataclass(frozen=True)
class InfeasibleDevice:
    """A device whose budgets no subnet meets: nothing was exported for it.

    ``cheapest`` maps each constrained objective (``latency_ms``, ``macs``, ...) to the lowest
    value the search found (the limits are in ``constraints``); ``message`` is the search's
    full explanation.
    """

    device: str
    runtime: str
    constraints: dict[str, float]
    cheapest: dict[str, float]
    message: str
    advice: str = ""  # int8 devices: the space TinyNAS picks and how to train it

    def row(self) -> dict[str, Any]:
        """A flat dict with :meth:`DeviceResult.row`'s keys, empty where there is no subnet."""
        row: dict[str, Any] = dict.fromkeys(DEVICE_ROW_KEYS, "")
        row.update(
            device=self.device,
            runtime=self.runtime,
            constraints="; ".join(f"{k}={v:g}" for k, v in self.constraints.items()),
            meets_constraints=False,
            note="no subnet meets the budgets; cheapest found: "
            + self.cheapest_text()
            + (f"; {self.advice}" if self.advice else ""),
        )
        return row

    def cheapest_text(self) -> str:
        """``"latency_ms 0.49, macs 1.2e+06"``: the cheapest value found per constraint."""
        return ", ".join(f"{k} {v:.4g}" for k, v in self.cheapest.items())


@dataclass
class SpecializeResult:
    """Every device's result, where the exports went, and the wall time of the whole call (s).

    ``infeasible`` lists the devices whose budgets no subnet meets (reported, not exported).
    ``latency_scales`` maps each device whose latency table was recalibrated to the factor its
    predictions were multiplied by (None: the drift could not be measured here).
    """

    run_dir: Path
    out_dir: Path
    devices: list[DeviceResult]
    seconds: float
    front: Any = None  # supernet.search.ParetoFront of predicted accuracy vs latency_ms, if any
    front_device: str | None = None  # whose latency table the front's latency axis uses
    infeasible: list[InfeasibleDevice] = field(default_factory=list)
    latency_scales: dict[str, float | None] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per device (specialized ones first), all with the same keys."""
        return [d.row() for d in self.devices] + [d.row() for d in self.infeasible]
