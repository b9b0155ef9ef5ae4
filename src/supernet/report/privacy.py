"""The DLG measurement as a markdown table, a grid of true vs reconstructed images and
PSNR-vs-iteration curves.

PSNR in dB of the reconstruction of lowest gradient distance against the true image (pixels in
[0, 1]); SSIM per Wang et al. 2004; label rate: fraction of images whose label was recovered.

Reference: DLG (Zhu, Liu, Han, NeurIPS'19, arXiv 1906.08935), Fig. 3 (images per iteration),
Sec. 5 (defenses).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from supernet.checkpoint import write_text_atomic
from supernet.privacy.accuracy_cost import DefenseCost
from supernet.privacy.experiment import PSNR_LEAK_DB, AttackRow

__all__ = [
    "plot_psnr_curves",
    "plot_reconstructions",
    "privacy_markdown",
    "write_defense_cost_report",
    "write_privacy_report",
]

MARKDOWN = "privacy.md"
GRID = "reconstructions.png"
CURVES = "psnr_curves.png"
RESULTS_JSON = "privacy.json"


def _f(value: float, digits: int = 1) -> str:
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def privacy_markdown(rows: Sequence[AttackRow], *, command: str = "") -> str:
    """The table: one line per (victim, defense) with PSNR median, seeds ≥ 30 dB, SSIM, label
    rate and attack time, then the per-seed values."""
    lines = ["# Deep Leakage from Gradients", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [
        f"PSNR (dB) and SSIM of the lowest-distance reconstruction against the true image; "
        f"leaked: seeds with PSNR ≥ {PSNR_LEAK_DB:.0f} dB; label: share of images whose label "
        "was recovered; time: mean seconds of one attack.",
        "",
        "| victim | method | defense | labels | shared params | iterations | seeds | "
        "PSNR median | leaked | SSIM mean | label rate | time (s) |",
        "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.setting} | {r.method or '–'} | {r.defense} | {r.label_strategy} | "
            f"{r.shared_params:,} | {r.iterations} | {len(r.seeds)} | {_f(r.psnr_median_db)} | "
            f"{r.leaked}/{len(r.seeds)} | {_f(r.ssim_mean, 3)} | {_f(100 * r.label_rate, 0)}% | "
            f"{_f(r.seconds_mean)} |"
        )
    lines += [
        "",
        "## Per seed",
        "",
        "| method | defense | seed | PSNR | SSIM | labels true → "
        "recovered | best iteration | diverged |",
        "|---|---|--:|--:|--:|---|--:|---|",
    ]
    for r in rows:
        for s in r.seeds:
            lines.append(
                f"| {r.method or '–'} | {r.defense} | {s.seed} | {_f(s.psnr_db)} | "
                f"{_f(s.ssim, 3)} | {list(s.true_labels)} → {list(s.recovered_labels)} | "
                f"{s.best_iteration} | {'yes' if s.diverged else 'no'} |"
            )
    return "\n".join(lines) + "\n"


def _label(row: AttackRow) -> str:
    return f"{row.method}, {row.defense}" if row.method else row.defense


def plot_reconstructions(rows: Sequence[AttackRow], path: str | Path) -> Path:
    """A grid: per row of the table, the true images of each seed over their reconstructions.
    Returns the PNG path (its directory is created)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = max(sum(s.true_pixels.shape[0] for s in r.seeds) for r in rows)
    fig = Figure(figsize=(1.3 * columns + 1.5, 2.6 * len(rows)), dpi=100)
    axes = fig.subplots(2 * len(rows), columns, squeeze=False)
    for k, r in enumerate(rows):
        images = [(s, i) for s in r.seeds for i in range(s.true_pixels.shape[0])]
        for c in range(columns):
            for line, attr in ((0, "true_pixels"), (1, "reconstructed_pixels")):
                ax = axes[2 * k + line][c]
                ax.set_xticks([])
                ax.set_yticks([])
                if c >= len(images):
                    ax.axis("off")
                    continue
                s, i = images[c]
                img = getattr(s, attr)[i].permute(1, 2, 0).numpy()
                ax.imshow(
                    img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", vmin=0.0, vmax=1.0
                )
                if line:
                    ax.set_xlabel(f"{s.psnr_db:.1f} dB", fontsize=7)
                else:
                    ax.set_title(f"seed {s.seed}", fontsize=7)
            if c == 0:
                axes[2 * k][0].set_ylabel("true", fontsize=7)
                axes[2 * k + 1][0].set_ylabel(_label(r), fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_psnr_curves(rows: Sequence[AttackRow], path: str | Path) -> Path:
    """PSNR (dB) of the dummy images against the L-BFGS iteration, one line per seed, one colour
    per table row. Returns the PNG path."""
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(7.5, 4.2), dpi=110)
    ax = fig.subplots()
    for k, r in enumerate(rows):
        colour = f"C{k % 10}"
        for j, s in enumerate(r.seeds):
            ax.plot(
                range(len(s.psnr_curve)),
                s.psnr_curve,
                color=colour,
                alpha=0.7,
                lw=1,
                label=_label(r) if j == 0 else None,
            )
    ax.axhline(PSNR_LEAK_DB, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("L-BFGS iteration")
    ax.set_ylabel("PSNR (dB)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path)
    return path


def _json(rows: Sequence[AttackRow]) -> str:
    payload = [
        {
            "setting": r.setting,
            "method": r.method,
            "defense": r.defense,
            "label_strategy": r.label_strategy,
            "iterations": r.iterations,
            "shared_params": r.shared_params,
            "seeds": [
                {
                    "seed": s.seed,
                    "psnr_db": s.psnr_db,
                    "ssim": s.ssim,
                    "label_rate": s.label_rate,
                    "best_iteration": s.best_iteration,
                    "seconds": s.seconds,
                    "diverged": s.diverged,
                    "psnr_curve": list(s.psnr_curve),
                }
                for s in r.seeds
            ],
        }
        for r in rows
    ]
    return json.dumps(payload, indent=1) + "\n"


def write_privacy_report(
    rows: Sequence[AttackRow], out_dir: str | Path, *, command: str = ""
) -> list[Path]:
    """Write ``privacy.md``, ``privacy.json``, ``reconstructions.png`` and ``psnr_curves.png``
    into ``out_dir`` (created); return their paths. The markdown and JSON are written
    atomically; a PNG is written to a temporary name and renamed."""
    import os

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / MARKDOWN, privacy_markdown(rows, command=command))
    write_text_atomic(out / RESULTS_JSON, _json(rows))
    paths = [out / MARKDOWN, out / RESULTS_JSON]
    for name, plot in ((GRID, plot_reconstructions), (CURVES, plot_psnr_curves)):
        tmp = plot(rows, out / f".{name}.tmp.png")
        os.replace(tmp, out / name)
        paths.append(out / name)
    return paths


COST_MARKDOWN = "privacy_cost.md"
COST_JSON = "privacy_cost.json"


def write_defense_cost_report(
    rows: Sequence[DefenseCost], out_dir: str | Path, *, setting: str = "", command: str = ""
) -> list[Path]:
    """Write ``privacy_cost.md`` (method, defense, test accuracy, drop against ``none``) and
    ``privacy_cost.json`` into ``out_dir`` (created), atomically; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Accuracy cost of the defenses (transfer task, every update defended)", ""]
    if setting:
        lines += [setting, ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [
        "| method | defense | test acc (%) | drop vs none (points) | val acc (%) | steps | s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        drop = "" if math.isnan(r.drop_points) else f"{r.drop_points:+.2f}"
        lines.append(
            f"| {r.method} | {r.defense} | {r.test_accuracy:.2f} | {drop} | "
            f"{r.val_accuracy:.2f} | {r.steps} | {r.seconds:.0f} |"
        )
    write_text_atomic(out / COST_MARKDOWN, "\n".join(lines) + "\n")
    payload = {"setting": setting, "command": command, "rows": [r.to_dict() for r in rows]}
    write_text_atomic(out / COST_JSON, json.dumps(payload, indent=2, allow_nan=True) + "\n")
    return [out / COST_MARKDOWN, out / COST_JSON]
