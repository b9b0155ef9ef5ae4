"""``supernet compress``: Deep Compression, AMC or HAQ on one subnet of a trained run; writes the
compressed artifact, plots and ``compress.md`` (a table: one row per method, baseline or stage)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import typer

from supernet.cli.console import console, friendly
from supernet.errors import ConfigError

__all__ = ["compress", "format_markdown"]

METHODS = ("deep-compression", "amc", "haq")
_MODULES = {
    "amc": ("supernet.compress.amc", "run_amc"),
    "haq": ("supernet.compress.haq", "run_haq"),
}


def format_markdown(method: str, subnet: str, result: dict[str, Any], out_dir: Path) -> str:
    """``compress.md``: a header, the rows as a markdown table (columns in first-seen order), the
    artifacts and the plots (as images, relative to ``out_dir``)."""
    rows = result.get("rows", [])
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    lines = [f"# supernet compress --method {method}", "", f"Subnet: `{subnet}`", ""]
    if columns:
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for row in rows:
            cells = [row.get(c, "") for c in columns]
            lines.append("| " + " | ".join(
                f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)
                for v in cells) + " |")  # fmt: skip
        lines.append("")
    for path in result.get("artifacts", []):
        lines.append(f"- artifact: `{_relative(Path(path), out_dir)}`")
    for path in result.get("plots", []):
        lines += ["", f"![{Path(path).stem}]({_relative(Path(path), out_dir)})"]
    return "\n".join(lines) + "\n"


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def _runner(method: str) -> Any:
    """The method's ``run_*`` function, imported on demand."""
    if method == "deep-compression":
        from supernet.compress.deep_compression import run_deep_compression

        return run_deep_compression
    module, name = _MODULES[method]
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"method {method!r} is not available in this build ({exc})") from exc


@friendly
def compress(
    run_dir: Annotated[Path, typer.Option(help="Run directory with a trained supernet.")],
    subnet: Annotated[
        str,
        typer.Option(help="largest, a device name specialized in the run, or a subnet.json."),
    ] = "largest",
    method: Annotated[str, typer.Option(help="deep-compression, amc or haq.")] = "deep-compression",
    budget: Annotated[
        str | None,
        typer.Option(
            help="deep-compression: ratio against the fp32 state_dict file, e.g. 10x (default); "
            "amc: MACs, e.g. 50%; haq: size or latency (see the method)."
        ),
    ] = None,
    episodes: Annotated[
        int, typer.Option(min=0, help="Search episodes of the RL agent (amc, haq).")
    ] = 100,
    finetune_steps: Annotated[
        int, typer.Option(min=0, help="Fine-tuning SGD steps (the same for every baseline).")
    ] = 300,
    bits: Annotated[
        int, typer.Option(min=1, max=8, help="deep-compression: cluster-index bits per weight.")
    ] = 5,
    test_images: Annotated[
        int | None, typer.Option(min=1, help="Score on the first test images (default: all).")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the batches and the search.")] = 0,
    out_dir: Annotated[
        Path | None, typer.Option(help="Output folder (default: RUN/compress/METHOD).")
    ] = None,
) -> None:
    """Compress one subnet: Deep Compression (prune, weight sharing, Huffman → subnet.dc), AMC
    (RL channel pruning at a MACs budget) or HAQ (RL mixed precision at a size/latency budget).

    Every method and its baselines fine-tune with the same recipe for --finetune-steps steps and
    are scored on the test set; the table goes to OUT/compress.md.

    Example: `supernet compress --run-dir runs/fashion-mnist-quick --subnet largest --method
    deep-compression --budget 10x`
    """
    if method not in METHODS:
        raise ConfigError(f"method = {method!r} is not known; choose from {METHODS}")
    runner = _runner(method)  # fail fast, before loading the run, when the module is missing
    from supernet.checkpoint import write_text_atomic
    from supernet.cli.progress import StepProgress
    from supernet.compress import load_context

    out = out_dir or run_dir / "compress" / method

    def progress(label: str, total: int | None = None) -> StepProgress:
        return StepProgress(console, label, total=total)

    with console.status("loading the run and extracting the subnet"):
        ctx = load_context(run_dir, subnet, out_dir=out, seed=seed, progress=progress,
                           test_images=test_images)  # fmt: skip
    if method == "deep-compression":
        result = runner(ctx, budget=budget or "10x", finetune_steps=finetune_steps, bits=bits)
    else:
        result = runner(ctx, budget=budget, episodes=episodes, finetune_steps=finetune_steps)
    md = out / "compress.md"
    write_text_atomic(md, format_markdown(method, subnet, result, out))
    for row in result.get("rows", []):
        console.print("  ".join(f"{k}={v}" for k, v in row.items()), markup=False)
    console.print(f"saved {md}", markup=False)
