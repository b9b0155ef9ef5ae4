"""``supernet privacy dlg``: how much a shared update leaks — Deep Leakage from Gradients against
the paper's LeNet or a TinyTL update of a trained supernet's subnet, with and without defenses."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from supernet.cli.console import (
    OLD_DEVICE,
    TORCH_DEVICE,
    SupernetGroup,
    console,
    friendly,
    hidden_aliases,
)

__all__ = ["MODELS", "defense_cost", "dlg", "privacy_app"]

MODELS = ("transfer", "lenet")

privacy_app = typer.Typer(
    cls=SupernetGroup,
    help="Privacy of on-device updates: reconstruct training images from a shared gradient.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@hidden_aliases({"--run": "--run-dir", "--out": "--out-dir", **OLD_DEVICE})
@friendly
def dlg(
    run_dir: Annotated[
        Path | None, typer.Option(help="Run directory written by `supernet train` (setting b).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="`transfer`: a subnet of --run-dir set up for each --method (default with "
            "--run-dir); `lenet`: the paper's sigmoid LeNet on 32×32 images, no run needed."
        ),
    ] = None,
    method: Annotated[
        list[str] | None,
        typer.Option(
            help="TinyTL method whose update is shared: full, last, norm+last, bias+last, "
            "tinytl-l, tinytl-l+b (repeatable) [default: tinytl-l+b]."
        ),
    ] = None,
    defense: Annotated[
        list[str] | None,
        typer.Option(
            help="none, pruning:P (drop the smallest P of each tensor), gaussian:S, "
            "laplacian:S (noise scale S), fp16, int8 (repeatable) [default: none]."
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Seeds 0..N-1 per setting.")] = 5,
    iterations: Annotated[int, typer.Option(min=1, help="L-BFGS iterations (paper: 300).")] = 300,
    patience: Annotated[
        int | None,
        typer.Option(min=1, help="Stop an attack after this many iterations without progress."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Private images per update (≤ 8).")] = 1,
    labels: Annotated[
        str, typer.Option(help="dlg (optimise the labels) or idlg (recover them first, batch 1).")
    ] = "dlg",
    dataset: Annotated[
        str, typer.Option(help="--model lenet: fashion-mnist or digits, resized to 32×32.")
    ] = "fashion-mnist",
    image_size: Annotated[
        int, typer.Option(min=4, help="--model lenet: image width in pixels (multiple of 4).")
    ] = 32,
    target: Annotated[str, typer.Option(help="--model transfer: the transfer target.")] = "digits",
    subnet: Annotated[
        str, typer.Option(help="--model transfer: largest, smallest, middle or ArchConfig JSON.")
    ] = "smallest",
    out_dir: Annotated[
        Path | None,
        typer.Option(help="Output folder [default: RUN_DIR/privacy, or runs/privacy-lenet]."),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="Intra-op CPU threads (default: torch's; 1 beside other jobs)."),
    ] = None,
    torch_device: Annotated[
        str, typer.Option(help=f"{TORCH_DEVICE} (loads the run there).")
    ] = "cpu",
) -> None:
    """Deep Leakage from Gradients (Zhu, Liu, Han, NeurIPS'19, arXiv 1906.08935).

    For every method × defense and seed: the victim computes the gradient of one step on a
    private batch and shares it (defended); the attacker matches it with L-BFGS on dummy images
    and labels. Writes OUT_DIR/privacy.md (PSNR, SSIM, label rate), privacy.json,
    reconstructions.png (true vs reconstructed) and psnr_curves.png (PSNR vs iteration).
    Needs scikit-image (`pip install 'supernet[privacy]'`).

    Example: `supernet privacy dlg --model lenet --seeds 5 --defense none --defense pruning:0.2`
    """
    from supernet.errors import ConfigError
    from supernet.privacy import (
        LABEL_STRATEGIES,
        lenet_victim,
        parse_defense,
        require_skimage,
        run_dlg,
        transfer_victim,
    )
    from supernet.report.privacy import write_privacy_report
    from supernet.runtime import set_threads
    from supernet.transfer import check_method

    require_skimage()
    set_threads(threads)
    model = model or ("transfer" if run_dir is not None else None)
    if model is None:
        raise ConfigError("give --run-dir (a trained supernet) or --model lenet (the paper's net)")
    if model not in MODELS:
        raise ConfigError(f"--model {model!r} is not known; choose from {MODELS}")
    if labels not in LABEL_STRATEGIES:
        raise ConfigError(f"--labels {labels!r} is not known; choose from {LABEL_STRATEGIES}")
    defenses = [parse_defense(d) for d in defense or ["none"]]
    if model == "lenet":
        if method:
            raise ConfigError("--method needs --model transfer; the LeNet shares every parameter")
        if run_dir is not None:
            raise ConfigError("--model lenet takes no --run-dir")
        methods = [""]
    else:
        if run_dir is None:
            raise ConfigError("--model transfer needs --run-dir")
        methods = [check_method(m) for m in dict.fromkeys(method or ["tinytl-l+b"])]
    loaded = None
    if model == "transfer":
        from supernet.train import load_run

        loaded = load_run(run_dir, device=torch_device)
    out_dir = out_dir or (
        Path(run_dir) / "privacy" if run_dir is not None else Path("runs/privacy-lenet")
    )

    def victim_for(m: str):
        if loaded is None:
            return lambda seed: lenet_victim(
                seed=seed, batch_size=batch_size, dataset=dataset, image_size=image_size
            )
        return lambda seed: transfer_victim(
            loaded,
            m,
            seed=seed,
            batch_size=batch_size,
            target=target,
            subnet=subnet,
            device=torch_device,
        )

    rows = []
    for m in methods:
        for d in defenses:

            def on_seed(s, m=m, d=d) -> None:
                console.print(
                    f"{m or model} {d} seed {s.seed}: PSNR {s.psnr_db:.1f} dB, SSIM "
                    f"{s.ssim:.3f}, labels {s.label_rate:.0%}, {s.seconds:.1f} s"
                )

            rows.append(
                run_dlg(
                    victim_for(m),
                    d,
                    seeds=range(seeds),
                    iterations=iterations,
                    label_strategy=labels,
                    method=m,
                    patience=patience,
                    on_seed=on_seed,
                )
            )
    table = Table(title=escape(rows[0].setting))
    for col in ("method", "defense", "PSNR median (dB)", "≥30 dB", "SSIM", "labels", "s/attack"):
        table.add_column(col, justify="left" if col in ("method", "defense") else "right")
    for r in rows:
        table.add_row(
            r.method or model,
            r.defense,
            f"{r.psnr_median_db:.1f}",
            f"{r.leaked}/{len(r.seeds)}",
            f"{r.ssim_mean:.3f}",
            f"{r.label_rate:.0%}",
            f"{r.seconds_mean:.1f}",
        )
    console.print(table)
    command = shlex.join(["supernet", *sys.argv[1:]]) if sys.argv[1:2] == ["privacy"] else ""
    paths = write_privacy_report(rows, out_dir, command=command)
    console.print(f"saved {', '.join(escape(str(p)) for p in paths)}", soft_wrap=True)


@hidden_aliases({"--out": "--out-dir", **OLD_DEVICE})
@friendly
def defense_cost(
    run_dir: Annotated[
        Path, typer.Option("--run-dir", help="Run directory written by `supernet train`.")
    ],
    method: Annotated[
        list[str] | None,
        typer.Option(
            help="TinyTL method trained on the target: full, last, norm+last, bias+last, "
            "tinytl-l, tinytl-l+b (repeatable) [default: tinytl-l+b]."
        ),
    ] = None,
    defense: Annotated[
        list[str] | None,
        typer.Option(
            help="Defense applied to every step's update: pruning:P, gaussian:S, laplacian:S, "
            "fp16, int8 (repeatable); `none`, the baseline, is always trained."
        ),
    ] = None,
    target: Annotated[str, typer.Option(help="The transfer target.")] = "digits",
    subnet: Annotated[
        str, typer.Option(help="largest, smallest, middle or ArchConfig JSON.")
    ] = "smallest",
    epochs: Annotated[int, typer.Option(min=1, help="Transfer epochs per training.")] = 5,
    train_limit: Annotated[
        int | None, typer.Option(min=1, help="Training images per epoch (default: all).")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the classifier, order and noise.")] = 0,
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", help="Output folder [default: RUN/privacy].")
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="Intra-op CPU threads (default: torch's; 1 beside other jobs)."),
    ] = None,
    torch_device: Annotated[
        str, typer.Option(help=f"{TORCH_DEVICE} (loads the run there).")
    ] = "cpu",
) -> None:
    """The accuracy a defense costs: train the transfer task on defended updates only.

    For every method: one training without a defense, then one per --defense, each from the same
    weights with the same recipe and batch order, every step's gradient defended before the
    optimizer uses it (the update a device shares in federated learning; DLG, arXiv 1906.08935,
    Sec. 5). Writes OUT/privacy_cost.md (test accuracy and drop in points against `none`) and
    privacy_cost.json.

    Example: `supernet privacy cost --run-dir runs/fashion-mnist-quick --defense pruning:0.2
    --defense gaussian:0.01`
    """
    from supernet.privacy import defense_accuracy_cost, parse_defense
    from supernet.report.privacy import write_defense_cost_report
    from supernet.runtime import set_threads
    from supernet.train import load_run
    from supernet.transfer import check_method

    set_threads(threads)
    defenses = [parse_defense("none")]
    for text in defense or []:
        parsed = parse_defense(text)
        if parsed not in defenses:
            defenses.append(parsed)
    methods = [check_method(m) for m in dict.fromkeys(method or ["tinytl-l+b"])]
    loaded = load_run(run_dir, device=torch_device)
    rows = []
    for m in methods:

        def on_result(r) -> None:
            console.print(
                f"{r.method} {r.defense}: test {r.test_accuracy:.2f}% "
                f"(drop {r.drop_points:+.2f} points), {r.seconds:.0f} s"
            )

        rows += defense_accuracy_cost(loaded, m, defenses, target=target, subnet=subnet,
                                      epochs=epochs, train_limit=train_limit, seed=seed,
                                      device=torch_device, on_result=on_result)  # fmt: skip
    command = shlex.join(["supernet", *sys.argv[1:]]) if sys.argv[1:2] == ["privacy"] else ""
    setting = f"subnet {subnet} of {Path(run_dir).name}, target {target}, {epochs} epochs"
    paths = write_defense_cost_report(rows, out_dir or Path(run_dir) / "privacy", setting=setting,
                                      command=command)  # fmt: skip
    console.print(f"saved {', '.join(escape(str(p)) for p in paths)}", soft_wrap=True)
