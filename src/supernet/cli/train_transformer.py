"""``supernet train`` for a ``family: hat`` preset or config: the dispatch and its console lines
(the training itself is :mod:`supernet.train.transformer_run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape

from supernet.cli.console import console
from supernet.errors import ConfigError

__all__ = ["train_transformer_if_hat"]


def train_transformer_if_hat(
    preset: str | None,
    config: Path | None,
    run_dir: Path | None,
    overrides: dict[str, Any],
    *,
    resume: bool,
    force: bool,
    nproc: int | None = None,
) -> bool:
    """Train the preset / config file if it says ``family: hat`` and return True; return False
    (and do nothing) for a CNN config, which ``supernet train`` then runs as before.

    Raises:
        ConfigError: ``--nproc`` with a ``hat`` config, or a bad config value (named).
        RunDirError: the run directory already holds a run and ``force`` is False.
    """
    from supernet.train.config import PRESET_DIR
    from supernet.train.transformer_run import (
        is_transformer_preset,
        load_transformer_config,
        train_transformer_run,
    )

    if preset is not None and config is None:
        path: Path | None = PRESET_DIR / f"{preset}.yaml"
    elif preset is None and config is None:
        path = None if run_dir is None else run_dir / "config.yaml"  # --resume --run-dir
    else:
        path = config if preset is None else None
    if path is None or not path.is_file() or not is_transformer_preset(path):
        return False
    if nproc is not None:
        raise ConfigError(f"--nproc {nproc}: family 'hat' runs train in one process; drop it")
    cfg = load_transformer_config(path, overrides=overrides, preset=preset)
    run_dir = run_dir or Path("runs") / cfg.preset
    what = f"({cfg.space} on {escape(cfg.corpus)}, {cfg.steps} steps)"
    console.print(
        f"training preset [bold]{escape(cfg.preset)}[/bold] {what} into {escape(str(run_dir))}"
    )
    result = train_transformer_run(cfg, run_dir, resume=resume, force=force)
    for name in ("largest", "smallest"):
        r = result[name]
        bleu = "n/a" if r["test_bleu"] is None else f"{r['test_bleu']:.2f}"
        console.print(f"{name} SubTransformer: valid loss {r['valid_loss']:.4f} nats/token, "
                      f"test BLEU {bleu} ({r['test_sentences']} sentences)")  # fmt: skip
    if "bleu_signature" in result:
        console.print(f"BLEU signature: {escape(result['bleu_signature'])}")
    console.print(f"done in {result['total_seconds']:.0f} s; supertransformer.pt, tokenizer.model, "
                  f"metrics.csv and result.json in {escape(str(run_dir))}")  # fmt: skip
    return True
