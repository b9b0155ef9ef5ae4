"""TinyNAS plots and tables: the CDF of the MACs of fitting subnets, one line per space."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from supernet.cost.tinynas import TinyNASResult

__all__ = ["plot_tinynas_cdf", "tinynas_rows"]


def tinynas_rows(result: TinyNASResult) -> list[dict[str, object]]:
    """One row per space, best first: rank, space, width, resolution, fitting / samples, mean
    MACs of the fitting subnets (M), smallest SRAM and Flash found (bytes)."""
    return [
        {
            "rank": i + 1,
            "space": s.space,
            "width_mult": s.width_mult,
            "resolution": s.resolution,
            "fitting": f"{s.fitting}/{s.samples}",
            "mean_macs_m": None if not s.fitting else round(s.mean_macs / 1e6, 3),
            "min_sram_bytes": s.min_sram_bytes,
            "min_flash_bytes": s.min_flash_bytes,
        }
        for i, s in enumerate(result.scores)
    ]


def plot_tinynas_cdf(result: TinyNASResult, path: str | os.PathLike[str], *, title: str) -> Path:
    """Write a PNG: for every space with fitting subnets, the fraction of its fitting subnets
    (y) with at most x MACs (x, millions); the chosen space drawn thick and named in the legend.

    Returns the path written (its directory is created).

    Reference: MCUNet, arXiv 2007.10319, Fig. 3.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(6.5, 4.5), dpi=120)
    ax = fig.subplots()
    for s in sorted(result.scores, key=lambda s: s.space):
        if not s.fitting:
            continue
        x = np.concatenate([[s.fitting_macs[0]], s.fitting_macs]) / 1e6
        y = np.concatenate([[0.0], np.arange(1, s.fitting + 1) / s.fitting])
        chosen = s.space == result.chosen
        label = f"{s.space} (mean {s.mean_macs / 1e6:.2f}M)" + (" — chosen" if chosen else "")
        style = {"linewidth": 0.9}
        if chosen:
            style = {"linewidth": 2.8, "color": "crimson", "zorder": 3}
        ax.step(x, y, where="post", label=label, **style)
    ax.set_xlabel("MACs of fitting subnets (M)")
    ax.set_ylabel("fraction of fitting subnets")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=5.5, loc="lower right", ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    return path
