"""``supernet quantize``: one subnet of a run → int8 ``subnet.tflite`` (run in TensorFlow Lite
Micro), ``subnet.int8.onnx`` and ``quant.json``."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from supernet.cli.console import console, count, friendly, hidden_aliases
from supernet.errors import ConfigError

if TYPE_CHECKING:
    from supernet.space import ArchConfig, SearchSpace

__all__ = ["quantize"]


def _config(space: SearchSpace, text: str) -> ArchConfig:
    """``largest``/``middle``/``smallest``, JSON text, an ArchConfig JSON file, or a
    ``subnet.json`` written by `supernet search`/`specialize` (its ``"config"``)."""
    from supernet.cli.cost import resolve_config
    from supernet.space import ArchConfig

    path = Path(text)
    if not text.lstrip().startswith("{") and path.is_file():
        try:
            doc = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {text!r} is not JSON: {exc}") from exc
        if isinstance(doc, dict) and isinstance(doc.get("config"), dict):
            try:
                return ArchConfig.from_dict(doc["config"]).validate(space)
            except ConfigError as exc:
                raise ConfigError(f"config file {text!r}: {exc}") from exc
    return resolve_config(space, text)


@hidden_aliases({"--out": "--out-dir"})
@friendly
def quantize(
    run_dir: Annotated[Path, typer.Option(help="Run directory with a trained supernet.")],
    out_dir: Annotated[
        Path, typer.Option(help="Folder for subnet.tflite, subnet.int8.onnx and quant.json.")
    ],
    config: Annotated[
        str,
        typer.Option(
            help="largest, middle, smallest, JSON text, an ArchConfig JSON file or a subnet.json."
        ),
    ] = "largest",
    calib_images: Annotated[
        int, typer.Option(min=1, help="Training images for BN re-calibration and int8 ranges.")
    ] = 1000,
    qat_steps: Annotated[
        int,
        typer.Option(min=0, help="QAT steps when PTQ loses more than --max-drop (0: PTQ only)."),
    ] = 0,
    max_drop: Annotated[
        float, typer.Option(min=0.0, help="Allowed int8 accuracy drop (points) before QAT.")
    ] = 0.5,
    test_images: Annotated[
        int | None,
        typer.Option(min=1, help="Test images for accuracy and the TFLM run (default: all)."),
    ] = None,
    tflm_images: Annotated[
        int | None,
        typer.Option(min=1, help="Of those, images run in TFLM, one by one (default: all)."),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the calibration/QAT images.")] = 0,
) -> None:
    """Quantize one subnet to int8 and deliver it to a microcontroller runtime.

    The subnet is extracted, BN re-calibrated, BN-folded and quantized post-training (int8
    per-channel symmetric weights, per-tensor asymmetric activations, calibrated on training
    images); with --qat-steps, quantization-aware fine-tuning follows when PTQ loses more than
    --max-drop points. The int8 `.tflite` runs in TensorFlow Lite Micro on the test images (arena
    bytes measured, top-1 compared with the PyTorch int8 model and fp32); the int8 ONNX (QDQ)
    is written beside it. Needs the MCU extra: `pip install -e ".[mcu]"`.

    Example: `supernet quantize --run-dir runs/fmnist-quick --config largest --out-dir
    exports/largest-int8`
    """
    import torch

    from supernet.data import BatchLoader, resize
    from supernet.export import export_mcu_subnet
    from supernet.quant import require
    from supernet.train import load_run
    from supernet.train.bn import recalibrate_bn
    from supernet.train.evaluate import calibration_loader

    require("litert_torch")  # fail fast, before loading the run, when the extra is missing
    require("tflite_micro")
    run = load_run(run_dir, device="cpu")
    arch = _config(run.space, config)
    res = arch.resolution
    batch = run.config.eval_batch_size
    calib = calibration_loader(run.splits.train, calib_images, batch, seed)
    calib_x = [resize(x, res) for x, _ in calib]
    test = BatchLoader(run.splits.test, batch, shuffle=False, augment=False, limit=test_images)
    tests = [(resize(x, res), y) for x, y in test]
    qat = None
    if qat_steps:
        generator = torch.Generator().manual_seed(seed)
        loader = BatchLoader(run.splits.train, run.config.batch_size, shuffle=True,
                             augment=False, generator=generator)  # fmt: skip
        qat = [(resize(x, res), y) for x, y in itertools.islice(loader, qat_steps)]
    with console.status("extracting and quantizing the subnet"):
        subnet = run.supernet.get_subnet(arch)
        recalibrate_bn(subnet, iter(calib_x))
        result = export_mcu_subnet(
            subnet, out_dir, calib_batches=calib_x, test_batches=tests, calib_images=calib_images,
            qat_batches=qat, qat_steps=qat_steps, max_drop=max_drop, tflm_images=tflm_images,
            metadata={"run_dir": str(run_dir), "space": run.space.name, "config": arch.to_dict(),
                      "run_progress": run.progress},
        )  # fmt: skip
    r = result.report
    console.print(
        f"{r['method']}: fp32 {r['fp32_accuracy']:.2f}% → int8 {r['int8_accuracy']:.2f}% "
        f"({r['drop_points']:+.2f} points drop) on {count(r['test_images'], 'test image')}"
    )
    t = r["tflite"]
    console.print(
        f"TFLM: arena {t['arena_bytes']:,} B, .tflite {t['bytes']:,} B; top-1 agreement with "
        f"the int8 model {t['tflm_vs_int8_agreement']:.2f}%, with fp32 "
        f"{t['tflm_vs_fp32_agreement']:.2f}% on {count(t['tflm_images'], 'image')}"
    )
    if t["float_ops"]:
        console.print(f"[yellow]warning:[/yellow] float ops left: {escape(str(t['float_ops']))}")
    if r["drop_points"] > max_drop:
        console.print(
            f"[yellow]warning:[/yellow] int8 loses {r['drop_points']:.2f} points > {max_drop}"
            + ("" if qat_steps else "; try --qat-steps 300")
        )
    console.print(f"saved {result.tflite_path}, {result.onnx_path}, {result.quant_path}",
                  markup=False)  # fmt: skip
