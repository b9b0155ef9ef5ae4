"""``supernet search-transformer``: HAT's evolutionary search of a trained SuperTransformer under a
latency budget, then fine-tuning or training from scratch, BLEU and measured latency
(HAT, arXiv 2005.14187, Sec. 3.4)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from supernet.cli.console import console, friendly

__all__ = ["search_transformer"]


@friendly
def search_transformer(
    run_dir: Annotated[
        Path,
        typer.Option(
            help="Run directory: supertransformer.pt, tokenizer.model, latency_predictor.pt."
        ),
    ],
    latency_ms: Annotated[
        float, typer.Option(help="Latency budget in ms (as the predictor's dataset measured).")
    ],
    predictor: Annotated[
        Path | None, typer.Option(help="Latency predictor (default: RUN_DIR/latency_predictor.pt).")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option(help="Output folder (default: RUN_DIR/hat-search-<budget>ms).")
    ] = None,
    corpus_tsv: Annotated[
        Path | None,
        typer.Option(help="Parallel corpus as TSV (default: the gettext en-de catalogs)."),
    ] = None,
    generations: Annotated[int, typer.Option(min=0, help="Evolution iterations (HAT: 30).")] = 30,
    population: Annotated[
        int, typer.Option(min=4, help="Children per generation (HAT: 50 mutants + 50 crossovers).")
    ] = 100,
    seed: Annotated[int, typer.Option(min=0, help="Search seed (same seed, same result).")] = 0,
    valid_batches: Annotated[
        int, typer.Option(min=1, help="Validation batches the fitness reads.")
    ] = 8,
    train: Annotated[
        str, typer.Option(help="After the search: none, finetune (inherited weights) or scratch.")
    ] = "finetune",
    train_steps: Annotated[int, typer.Option(min=1, help="Training steps after the search.")] = 300,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate of that training.")] = 5e-4,
    test_sentences: Annotated[
        int, typer.Option(min=0, help="Test pairs translated for BLEU (0 = all).")
    ] = 200,
    resume: Annotated[
        bool, typer.Option(help="Reuse OUT_DIR/search.json when its settings match.")
    ] = True,
) -> None:
    """Search a SubTransformer for a latency budget (fitness: validation loss with inherited
    weights; constraint: the latency predictor), then fine-tune it or train it from scratch and
    write `result.md` (BLEU with sacreBLEU's signature, measured latency, parameters).

    Example: `supernet search-transformer --run-dir runs/hat-tiny --latency-ms 60 --train
    finetune --train-steps 300`
    """
    from supernet.cli.progress import StepProgress
    from supernet.data.parallel import load_gettext_corpus, load_tsv_corpus
    from supernet.report.transformer_search import HAT_EVOLUTION
    from supernet.report.transformer_specialize import SpecializeTransformer, specialize_transformer
    from supernet.train.transformer import SuperTransformerTraining

    settings = SpecializeTransformer(
        latency_ms=latency_ms,
        evolution=dataclasses.replace(
            HAT_EVOLUTION, population=population, generations=generations, seed=seed
        ),
        valid_batches=valid_batches,
        train_mode=train,
        training=SuperTransformerTraining(
            steps=train_steps, lr=lr, warmup_steps=max(1, train_steps // 10), seed=seed
        ),
        test_sentences=test_sentences,
        resume=resume,
    )
    corpus = load_tsv_corpus(corpus_tsv) if corpus_tsv else load_gettext_corpus()
    console.print(f"searching {escape(str(run_dir))} under {latency_ms:g} ms")
    with StepProgress(console, "generations") as bar:
        result = specialize_transformer(
            run_dir, corpus, settings, predictor_path=predictor, out_dir=out_dir,
            progress=bar.update,
        )  # fmt: skip
    trained = "" if result["bleu_trained"] is None else (
        f", after {result['train_mode']} {result['bleu_trained']:.2f}"
    )  # fmt: skip
    console.print(
        f"{escape(result['describe'])}\npredicted {result['predicted_latency_ms']:.2f} ms, "
        f"measured {result['measured_latency_ms']:.2f} ms; {result['params']:,} parameters; "
        f"test BLEU inherited {result['bleu_inherited']:.2f}{trained} "
        f"({escape(result['bleu_signature'])})"
    )
    out = Path(out_dir or Path(run_dir) / f"hat-search-{latency_ms:g}ms")
    console.print(f"wrote {escape(str(out / 'result.md'))}")
