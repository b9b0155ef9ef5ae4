"""The α history of a ProxylessNAS search as a figure (the paper's Fig. 4 style: which op each
block converged to).

Left: the most likely op of every block slot after each α step (one colour per op); right: the
final path probabilities per slot, the derived op marked.

Reference: ProxylessNAS (Cai, Zhu, Han; ICLR'19; arXiv 1812.00332), Fig. 4 (the architecture
found for each platform, block by block).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from supernet.nas.mixed_op import op_name

__all__ = ["plot_alpha_history"]


def plot_alpha_history(
    history: torch.Tensor, ops: list, path: str | Path, *, title: str = ""
) -> Path:
    """Write the α-history figure as PNG (120 dpi) through a temporary file renamed into place.

    Shapes: ``history`` ``[T, num_slots, num_ops]`` probabilities (0 where a slot lacks an op);
    ``ops`` names the columns (``(kernel, expand)`` or ``None`` for skip).

    Returns the path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    h = history.detach().cpu().numpy()
    _, slots, n_ops = h.shape
    names = [op_name(op) for op in ops]
    cmap = ListedColormap(plt.get_cmap("tab10" if n_ops <= 10 else "tab20").colors[:n_ops])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.28 * slots + 2.2),
                                      gridspec_kw={"width_ratios": [2, 1]})  # fmt: skip
    left.imshow(h.argmax(2).T, aspect="auto", cmap=cmap, vmin=-0.5, vmax=n_ops - 0.5,
                interpolation="nearest")  # fmt: skip
    left.set_yticks(range(slots))
    left.tick_params(axis="y", labelsize=7)
    left.set_xlabel("α step (0: end of warm-up)")
    left.set_ylabel("block slot")
    left.set_title("most likely op per block")
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(n_ops)]
    left.legend(handles, names, ncols=min(n_ops, 5), fontsize=7, loc="upper center",
                bbox_to_anchor=(0.5, -0.08 - 1.5 / (slots + 8)))  # fmt: skip
    final = h[-1]
    im = right.imshow(final, aspect="auto", cmap="viridis", vmin=0.0, vmax=max(final.max(), 1e-6))
    chosen = final.argmax(1)
    right.scatter(chosen, np.arange(slots), marker="x", color="red", s=18, label="derived")
    right.set_xticks(range(n_ops), names, rotation=90, fontsize=7)
    right.set_yticks(range(slots))
    right.tick_params(axis="y", labelsize=7)
    right.set_title("final path probabilities")
    fig.colorbar(im, ax=right, fraction=0.05)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path
