"""supernet side by side with the Once-for-All reference: ``python -m benches`` (``make bench``).

Runs every metric of :mod:`benches.side_by_side` in one process, prints ours, the reference and
the ratio (> 1 = supernet ahead), and writes the table to ``benches/RESULTS.md`` with the date,
CPU and versions. The reference runs when ``ofa`` and ``tqdm`` are importable
(``pip install ofa tqdm``); nothing is installed here.

    python -m benches [--repeats 5] [--threads 2] [--only forward search ...] [--no-reference]
                      [--out benches/RESULTS.md] [--tiny-settings]

``--tiny-settings`` shrinks every metric (one repeat, a 10 x 5 search, batch 1 at 128 px) so the
whole bench runs in seconds; the test suite uses it so the bench cannot rot.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path

from benches.reference import load_reference
from benches.side_by_side import METRICS, Row, Settings, environment, run_all
from supernet.checkpoint import write_text_atomic

ONLY_CHOICES = (*METRICS, "onnxruntime")


def _value(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def format_table(rows: list[Row]) -> str:
    """The rows as a markdown table (one header per metric group)."""
    lines = [
        "| metric | unit | supernet | baseline | ratio (> 1 = supernet ahead) | notes |",
        "|---|---|---:|---:|---:|---|",
    ]
    group = None
    for r in rows:
        if r.group != group:
            group = r.group
            lines.append(f"| **{group}** | | | | | |")
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}x"
        if r.difference and r.reference is not None:
            ratio = f"{r.ours - r.reference:+.4g} (difference)"
        base = "—" if r.reference is None else f"{_value(r.reference)} ({r.baseline})"
        lines.append(f"| {r.metric} | {r.unit} | {_value(r.ours)} | {base} | {ratio} | {r.note} |")
    return "\n".join(lines)


def write_results(path: Path, rows: list[Row], env: dict[str, str], command: str) -> None:
    """Write the results markdown atomically (``supernet.checkpoint.write_text_atomic``)."""
    header = [
        "# supernet vs the Once-for-All reference",
        "",
        f"Produced by `{command}`. Medians over repeats; times are per call. Ratio = how many "
        "times better supernet is (reference time / our time, or our rate / reference rate); "
        "rows marked `eager` compare onnxruntime with PyTorch eager, both ours.",
        "",
        *(f"- {k}: {v}" for k, v in env.items()),
        "",
    ]
    text = "\n".join(header) + format_table(rows) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)


TINY = Settings(
    repeats=1,
    resolutions=(128,),
    batch_sizes=(1,),
    train_batch=2,
    train_resolution=128,
    extract_configs=2,
    extract_warmup=0,
    population=10,
    generations=5,
    search_seeds=1,
    macs_configs=20,
    reference_macs_configs=2,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benches",
        description="supernet side by side with the Once-for-All reference (ofa on PyPI): for "
        "each metric, our median, the reference's and the ratio (> 1 = supernet ahead).",
        epilog="The reference runs when it is importable (pip install ofa tqdm, or pip install "
        "-e '.[bench]'); nothing is installed here. Metrics: forward, train-step, extraction, "
        "search, macs (ofa-mbv3 with the reference, mbv3-tiny ours alone) and onnxruntime "
        "(exported mbv3-tiny subnets vs PyTorch eager). A full run takes ~3 min on 2 cores.",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, both sides")
    parser.add_argument(
        "--only", nargs="+", choices=ONLY_CHOICES, default=(), help="run these metrics only"
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the reference even when it is installed"
    )
    parser.add_argument("--no-tiny", action="store_true", help="skip the mbv3-tiny metrics")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benches/RESULTS.md"),
        help="markdown results file ('-' = do not write)",
    )
    parser.add_argument(
        "--tiny-settings",
        action="store_true",
        help="shrink every metric to run in seconds (for tests)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error(f"--repeats {args.repeats} and --threads {args.threads} must be >= 1")
    settings = TINY if args.tiny_settings else Settings(repeats=args.repeats)
    settings = dataclasses.replace(settings, threads=args.threads, tiny=not args.no_tiny)
    ref = None if args.no_reference else load_reference()
    if ref is None:
        print(
            "reference: not run ("
            + ("--no-reference" if args.no_reference else "not installed; pip install ofa tqdm")
            + ")"
        )
    else:
        print(
            f"reference: ofa {ref.version}"
            + (
                " — torchvision stubbed (the reference imports it only for data loading, "
                "which is not benchmarked)"
                if ref.stubbed_torchvision
                else ""
            )
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reference's deprecated-API warnings
        rows = run_all(settings, ref, tuple(args.only), log=lambda m: print(m, flush=True))
    env = environment(settings, ref)
    print(f"torch {env['torch']}, {settings.threads} threads, {env['cpu']}")
    print(format_table(rows))
    if str(args.out) != "-":
        command = "python -m benches " + " ".join(sys.argv[1:] if argv is None else argv)
        write_results(args.out, rows, env, command.strip())
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
