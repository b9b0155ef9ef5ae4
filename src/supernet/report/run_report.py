"""Specialization tables and the Pareto plot, and ``report.md`` for a run directory."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from supernet.checkpoint import write_text_atomic
from supernet.report.specialize import SpecializeResult
from supernet.space import describe
from supernet.train.rundir import write_csv_atomic

__all__ = [
    "mcu_markdown",
    "plot_pareto",
    "specialize_markdown",
    "write_run_report",
    "write_specialize_outputs",
]

SPECIALIZE_MD = "specialize.md"
PARETO_PNG = "pareto.png"


def specialize_markdown(result: SpecializeResult) -> str:
    """One row per device: budgets, chosen subnet, predicted/measured accuracy and costs; a
    device whose budgets no subnet meets gets a row with the cheapest costs found."""
    lines = [
        "| device | budgets | subnet | pred. val acc (%) | test acc (%) | best random "
        "≤ cost (%) | MACs (M) | params (M) | peak mem fp32 (KiB) | latency pred / meas (ms) "
        "| meets budgets | ONNX max abs diff |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for d in result.devices:
        budgets = ", ".join(f"{k} {v:g}" for k, v in d.constraints.items()) or "none"
        best_random = f"{max(d.baseline_test_accuracy):.2f}" if d.baseline_test_accuracy else "—"
        pred_lat = "—" if d.predicted_latency_ms is None else f"{d.predicted_latency_ms:.3f}"
        missed = [k for k, ok in d.meets.items() if not ok]
        meets = "yes" if not missed else "**no: " + ", ".join(missed) + "**"
        lines.append(
            f"| {d.device} ({d.runtime}) | {budgets} | `{describe(d.config)}` | "
            f"{d.predicted_accuracy:.2f} | {d.test_accuracy:.2f} | {best_random} | "
            f"{d.macs / 1e6:.2f} | {d.params / 1e6:.3f} | {d.peak_memory_bytes / 1024:.1f} | "
            f"{pred_lat} / {d.measured_latency_ms:.3f} | {meets} | {d.onnx_max_abs_diff:.1e} |"
        )
    for d in result.infeasible:
        budgets = ", ".join(f"{k} {v:g}" for k, v in d.constraints.items())
        lines.append(
            f"| {d.device} ({d.runtime}) | {budgets} | no subnet meets the budgets (cheapest "
            f"found: {d.cheapest_text()}) | — | — | — | — | — | — | — | **no: infeasible** | — |"
        )
    lines += [f"- {d.device}: {d.advice}" for d in result.infeasible if d.advice]
    lines += mcu_markdown(result)
    lines.append("")
    for device, factor in result.latency_scales.items():
        lines.append(
            f"Latency table of {device} recalibrated before the search: this machine runs "
            f"{factor:.3f}x the latency it had when the table was built; predictions scaled by "
            f"{factor:.3f}.\n"
            if factor is not None
            else f"Latency table of {device} not recalibrated (built on another machine or "
            "without fit subnets): predictions as built.\n"
        )
    lines.append(
        f"Specialized {len(result.devices)} device(s) in {result.seconds:.1f} s (search, "
        "extraction, BN re-calibration, test, timing, random baselines, export)."
        + (
            f" {len(result.infeasible)} device(s) had budgets no subnet meets: nothing exported "
            "for them."
            if result.infeasible
            else ""
        )
    )
    return "\n".join(lines) + "\n"


def mcu_markdown(result: SpecializeResult) -> list[str]:
    """Lines of the int8 table (devices with ``int8: true``; none: no lines): fp32 / int8 /
    TFLM test accuracy, modelled SRAM under each planner vs the TFLM arena measured, modelled
    Flash vs the ``.tflite`` size (KiB = 1024 bytes), and whether the measured figures meet the
    budgets."""
    rows = [d for d in result.devices if d.mcu is not None]
    if not rows:
        return []
    lines = [
        "",
        "int8 on the microcontroller (TensorFlow Lite Micro, measured):",
        "",
        "| device | int8 | fp32 / int8 / TFLM test acc (%) | TFLM = int8 top-1 (%) | SRAM model "
        "naive / tinyengine / tflm (KiB) | TFLM arena: planned / total (KiB) | Flash model / "
        ".tflite (KiB) | meets SRAM / Flash (measured) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for d in rows:
        m = d.mcu
        assert m is not None
        kib = "/".join(f"{m.sram_bytes[p] / 1024:.1f}" for p in ("naive", "tinyengine", "tflm"))
        meets = " / ".join(
            "—" if k not in m.meets else ("yes" if m.meets[k] else "**no**")
            for k in ("max_sram_bytes", "max_flash_bytes")
        )
        images = f"{m.tflm_images} image{'' if m.tflm_images == 1 else 's'}"
        lines.append(
            f"| {d.device} | {m.method} | {m.fp32_accuracy:.2f} / {m.int8_accuracy:.2f} / "
            f"{m.tflm_accuracy:.2f} ({images}) | {m.tflm_vs_int8_agreement:.2f} | "
            f"{kib} | {m.arena_head_bytes / 1024:.1f} / {m.arena_bytes / 1024:.1f} | "
            f"{m.flash_bytes / 1024:.1f} / {m.tflite_bytes / 1024:.1f} | {meets} |"
        )
    return lines


def plot_pareto(result: SpecializeResult, path: str | Path) -> Path | None:
    """Predicted accuracy vs latency: the NSGA-II front, each device's chosen subnet (predicted)
    and its measured point (test accuracy, measured latency). ``None`` without a front."""
    if result.front is None:
        return None
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    objectives = result.front.objectives
    order = np.argsort(objectives[:, 1])
    fig = Figure(figsize=(6, 4.5), dpi=120)
    ax = fig.subplots()
    ax.plot(objectives[order, 1], objectives[order, 0], "-o", ms=3, color="0.55",
            label=f"Pareto front (NSGA-II, {result.front_device}'s latency table)")  # fmt: skip
    for i, d in enumerate(result.devices):
        color = f"C{i}"
        if d.predicted_latency_ms is not None:
            ax.scatter(d.predicted_latency_ms, d.predicted_accuracy, marker="*", s=160,
                       color=color, edgecolor="k", zorder=3,
                       label=f"{d.device}: chosen (predicted)")  # fmt: skip
        ax.scatter(d.measured_latency_ms, d.test_accuracy, marker="X", s=70, color=color,
                   edgecolor="k", zorder=3, label=f"{d.device}: measured (test acc)")  # fmt: skip
        limit = d.constraints.get("max_latency_ms")
        if limit is not None and math.isfinite(limit):
            ax.axvline(limit, color=color, linestyle=":", linewidth=1)
    ax.set_xlabel("latency (ms, batch 1)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Specialized subnets: predicted accuracy vs latency", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


def write_specialize_outputs(result: SpecializeResult) -> list[Path]:
    """Write ``specialize.csv``, ``specialize.md`` and ``pareto.png`` into ``result.out_dir``."""
    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(out / "specialize.csv", result.rows())
    write_text_atomic(out / SPECIALIZE_MD, specialize_markdown(result))
    written = [out / "specialize.csv", out / SPECIALIZE_MD]
    png = plot_pareto(result, out / PARETO_PNG)
    if png is not None:
        written.append(png)
    return written


def _section(title: str, path: Path, note: str) -> list[str]:
    if not path.is_file():
        return [f"## {title}", "", f"_{note}_", ""]
    return [f"## {title}", "", path.read_text().strip(), ""]


def write_run_report(run_dir: str | Path, *, specialized_dir: str | Path | None = None) -> Path:
    """Assemble ``report.md`` from what the run directory holds: the subnet evaluation, the
    accuracy predictor's held-out metrics and the specialization table and plot."""
    run_dir = Path(run_dir)
    spec_dir = Path(specialized_dir) if specialized_dir else run_dir / "specialized"
    lines = [f"# Run report: {run_dir.name}", ""]
    lines += _section("Subnets on the test set", run_dir / "eval.md", "run `supernet eval`")
    lines += _section("Accuracy predictor", run_dir / "predictor.md",
                      "run `supernet predict collect` and `supernet predict fit`")  # fmt: skip
    lines += _section("Specialized subnets", spec_dir / SPECIALIZE_MD, "run `supernet specialize`")
    if (spec_dir / PARETO_PNG).is_file():
        rel = (spec_dir / PARETO_PNG).relative_to(run_dir) if spec_dir.is_relative_to(
            run_dir) else spec_dir / PARETO_PNG  # fmt: skip
        lines += [f"![Pareto front]({rel})", ""]
    path = run_dir / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path
