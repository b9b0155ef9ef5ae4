"""TinyNAS vs a naively shrunk space, end to end on Fashion-MNIST (issue 23's headline target).

MCUNet's claim (Lin et al., NeurIPS'20, arXiv 2007.10319, Sec. 3.1, Fig. 3): for a tight MCU
budget, first pick the search space whose *fitting* subnets have the most MACs, then search in it;
this beats shrinking one network uniformly until it fits. At CPU scale:

1. ``supernet tinynas`` ranks the ``mbv3-tiny-w{W}-r{R}`` spaces for the device's budget and
   picks one; the baseline keeps resolution 32 and takes the largest width whose largest subnet
   fits (:func:`supernet.cost.tinynas.naive_shrink_space`).
2. Each space gets a supernet trained by the quick preset's recipe
   (``configs/fashion-mnist-mcu-quick.yaml`` with ``--set space=...``), an accuracy dataset and a
   predictor (``predict collect --n``, ``predict fit``), and ``supernet specialize`` for the
   device (the same evolutionary search, int8 PTQ / QAT, ``.tflite`` run in TensorFlow Lite Micro).
3. The table: int8 test accuracy (PyTorch int8 and TFLM), MACs, measured arena and ``.tflite``
   size against the budget, per space.

Every step is skipped when its output exists (training resumes), so the bench can be stopped and
started again. Long: two quick-preset trainings (30-60 min each on 2 busy cores).

    python -m benches.tinynas_vs_shrunk [--device mcu-256k-512k]
        [--devices configs/devices/mcu-tinynas.yaml] [--runs runs/tinynas] [--collect 100]
        [--tflm-images 10000] [--out runs/tinynas/tinynas_vs_shrunk.md]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

from supernet.cost.device import load_devices
from supernet.cost.tinynas import naive_shrink_space, rank_spaces

PRESET = "fashion-mnist-mcu-quick"
COLUMNS = ("int8_method", "fp32_test_acc", "int8_test_acc", "tflm_test_acc", "tflm_images",
           "macs", "sram_tflm_bytes", "tflm_arena_bytes", "tflm_arena_head_bytes",
           "flash_model_bytes", "tflite_bytes", "meets_constraints")  # fmt: skip


def _supernet(*args: str) -> None:
    command = [sys.executable, "-m", "supernet", *args]
    print("$ supernet " + " ".join(args), flush=True)
    subprocess.run(command, check=True)


def _prepare(space: str, run: Path, collect: int) -> None:
    """Train (or resume), collect an accuracy dataset and fit the predictor, each once."""
    done = run / "eval.csv"
    if not (run / "checkpoint.pt").exists():
        _supernet("train", "--preset", PRESET, "--set", f"space={space}", "--run-dir", str(run))
    elif not done.exists():
        _supernet("train", "--preset", PRESET, "--set", f"space={space}", "--run-dir", str(run),
                  "--resume")  # fmt: skip
    if not done.exists():
        _supernet("eval", "--run-dir", str(run))
    if not (run / "predictor.pt").exists():
        _supernet("predict", "collect", "--run-dir", str(run), "--n", str(collect))
        _supernet("predict", "fit", "--run-dir", str(run))


def _specialize(run: Path, devices: Path, tflm_images: int) -> dict[str, str]:
    out = run / "specialized-tinynas"
    if not (out / "specialize.csv").exists():
        _supernet("specialize", "--run-dir", str(run), "--devices", str(devices), "--out-dir",
                  str(out), "--tflm-images", str(tflm_images))  # fmt: skip
    with open(out / "specialize.csv", newline="") as handle:
        return next(csv.DictReader(handle))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="mcu-256k-512k")
    parser.add_argument("--devices", type=Path, default=Path("configs/devices/mcu-tinynas.yaml"))
    parser.add_argument("--runs", type=Path, default=Path("runs/tinynas"))
    parser.add_argument("--collect", type=int, default=100, help="subnets in each accuracy dataset")
    parser.add_argument("--tflm-images", type=int, default=10000)
    parser.add_argument("--samples", type=int, default=1000, help="TinyNAS samples per space")
    parser.add_argument("--out", type=Path, default=Path("runs/tinynas/tinynas_vs_shrunk.md"))
    args = parser.parse_args(argv)

    spec = next((d for d in load_devices(args.devices) if d.name == args.device), None)
    if spec is None:
        parser.error(f"device {args.device!r} is not in {args.devices}")
    sram, flash = spec.constraints["max_sram_bytes"], spec.constraints["max_flash_bytes"]
    ranking = rank_spaces(sram, flash, planner=spec.planner, samples=args.samples)
    chosen = ranking.chosen
    shrunk = naive_shrink_space(sram, flash, planner=spec.planner)
    print(f"TinyNAS picks {chosen}; naive shrinking gives {shrunk}", flush=True)
    if chosen == shrunk:
        print("the two are the same space: nothing to compare for this budget")
        return
    rows = {}
    for label, space in (("TinyNAS", chosen), ("shrunk", shrunk)):
        run = args.runs / space
        _prepare(space, run, args.collect)
        rows[label] = (space, _specialize(run, args.devices, args.tflm_images))

    lines = [
        f"# TinyNAS vs naive shrinking: {spec.name} (SRAM <= {sram:,.0f} B, Flash <= "
        f"{flash:,.0f} B, int8, {spec.planner} planner)",
        "",
        "Command: `python -m benches.tinynas_vs_shrunk " + " ".join(argv or sys.argv[1:]) + "`",
        "",
        "| space | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for label, (space, row) in rows.items():
        lines.append(f"| {label}: {space} | " + " | ".join(row.get(c, "") for c in COLUMNS) + " |")
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
