"""The int8 MCU memory model against TensorFlow Lite Micro: modelled ``tflm`` SRAM vs the arena
TFLM's interpreter measures, modelled Flash vs the ``.tflite`` size, on random subnets of two
spaces (random weights: sizes do not depend on the weights' values).

    python -m benches.mcu_validate [--spaces mbv3-tiny mbv3-tiny-w0.5-r32] [--per-space 10]
                                   [--fit-per-space 0] [--seed 0] [--out FILE.json]
    python -m benches.mcu_validate --load FILE.json [FILE.json ...]   # no conversion: the
        # saved measurements against the current model

Per subnet: PTQ (one calibration batch), ``.tflite`` conversion, one TFLM invocation
(:func:`supernet.export.run_tflm`, public functions of the MCU extra); the model's numbers come
from :func:`supernet.cost.mcu_batch.sram_bytes` (``tflm`` planner) and
:func:`~supernet.cost.mcu_batch.flash_bytes`. Reported: relative error per subnet and the worst
case, for the arena's planned part ("head": activations + scratch, the ``tflm`` planner), its
total (head + persistent "tail", the ``tflm-arena`` planner), and for Flash; also per space.
With ``--fit-per-space K`` the first K
subnets of each space calibrate Flash = payload + fixed + per_op x ops and arena total =
head + tail (tail = a + b x ops, least squares) and the errors are measured on the rest only.

A conversion takes ~3 min per subnet on the shared, loaded 2-core VM (seconds on an idle one):
size ``--per-space`` to the wall time you have.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from supernet.cost import block_list_from_config, mcu_cost
from supernet.cost.mcu import CONVERTER_OPS, FLASH_FIXED_BYTES, FLASH_PER_OP_BYTES
from supernet.cost.mcu_batch import flash_bytes, sram_bytes
from supernet.space import ArchConfig, ConfigBatch, get_space


@dataclass(frozen=True)
class Measured:
    """One subnet: modelled and measured bytes, and the seconds its conversion + run took."""

    space: str
    config: dict
    ops_modelled: int
    ops_tflite: int
    op_counts: dict
    sram_tflm_bytes: int
    arena_head_bytes: int
    arena_bytes: int
    flash_bytes: int
    flash_payload_bytes: int
    tflite_bytes: int
    seconds: float
    sram_arena_bytes: int = 0  # tflm-arena model: planned + persistent (0 in files before it)


def measure_subnet(space_name: str, config, seed: int = 0, keep: Path | None = None) -> Measured:
    """Model and measure one subnet of ``space_name`` (random weights, random calibration);
    with ``keep``, the ``.tflite`` is written there.

    Raises:
        MissingExtraError: the MCU extra is not installed. ExportError: conversion/TFLM fails.
    """
    from supernet.export.tflite import export_tflite, tflite_operators
    from supernet.export.tflm import run_tflm
    from supernet.nn import create_supernet
    from supernet.quant import quantize_ptq

    space = get_space(space_name)
    torch.manual_seed(seed)
    subnet = create_supernet(space).get_subnet(config).eval()
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(4, space.input_channels, config.resolution, config.resolution, generator=gen)
    tflite = export_tflite(quantize_ptq(subnet, [x], max_images=4))
    run = run_tflm(tflite, x[:1])
    seconds = time.perf_counter() - start
    if keep is not None:
        keep.write_bytes(tflite)
    counts: dict[str, int] = {}
    for op in tflite_operators(tflite):
        counts[op.name] = counts.get(op.name, 0) + op.count
    modelled = _modelled(space_name, config)
    return Measured(
        space_name, config.to_dict(), modelled["ops_modelled"], sum(counts.values()), counts,
        modelled["sram_tflm_bytes"], run.arena_head_bytes, run.arena_bytes,
        modelled["flash_bytes"], modelled["flash_payload_bytes"], run.tflite_bytes, seconds,
        modelled["sram_arena_bytes"],
    )  # fmt: skip


def _modelled(space_name: str, config) -> dict[str, int]:
    """The model's columns of :class:`Measured` for one subnet, from the current model."""
    space = get_space(space_name)
    one = ConfigBatch.from_configs([config], space)
    layers = mcu_cost(block_list_from_config(config, space), "tflm").layers
    ops = sum(layer.kind not in CONVERTER_OPS for layer in layers)  # as FLASH_PER_OP was fitted
    flash = int(flash_bytes(one, space)[0])
    sram = int(sram_bytes(one, space, planner="tflm")[0])
    arena = int(sram_bytes(one, space, planner="tflm-arena")[0])
    payload = flash - FLASH_FIXED_BYTES - FLASH_PER_OP_BYTES * ops
    return {"ops_modelled": ops, "sram_tflm_bytes": sram, "flash_bytes": flash,
            "flash_payload_bytes": payload, "sram_arena_bytes": arena}  # fmt: skip


def remodel(row: Measured) -> Measured:
    """``row`` with its modelled columns recomputed by the current model (the measured ones kept):
    re-analyses saved measurements after a model change without converting again."""
    return replace(row, **_modelled(row.space, ArchConfig.from_dict(row.config)))


def fit_overheads(rows: list[Measured]) -> dict[str, float]:
    """Least-squares fit on ``rows``: ``.tflite`` bytes − payload = fixed + per_op × ops, and
    arena tail (total − head) = tail_fixed + tail_per_op × ops (ops = modelled operators)."""
    ops = np.array([r.ops_modelled for r in rows], dtype=float)
    design = np.stack([np.ones_like(ops), ops], axis=1)
    extra = np.array([r.tflite_bytes - r.flash_payload_bytes for r in rows], dtype=float)
    tail = np.array([r.arena_bytes - r.arena_head_bytes for r in rows], dtype=float)
    (fixed, per_op), *_ = np.linalg.lstsq(design, extra, rcond=None)
    (tail_fixed, tail_per_op), *_ = np.linalg.lstsq(design, tail, rcond=None)
    return {"flash_fixed_bytes": float(fixed), "flash_per_op_bytes": float(per_op),
            "arena_tail_fixed_bytes": float(tail_fixed),
            "arena_tail_per_op_bytes": float(tail_per_op)}  # fmt: skip


def errors(rows: list[Measured], fit: dict[str, float] | None = None) -> dict[str, float]:
    """Worst-case and mean relative errors (%, model − measured over measured) on ``rows``:
    ``sram_vs_head`` (tflm model vs the arena's planned part), ``flash`` (model, or the fitted
    overheads with ``fit``), ``arena`` (the ``tflm-arena`` model: planned + persistent, vs the
    whole arena), ``tail`` (its persistent part vs the measured tail), and with ``fit`` also
    ``arena_total`` (head model + fitted tail)."""

    def rel(model: np.ndarray, measured: np.ndarray) -> np.ndarray:
        return 100.0 * (model - measured) / measured

    head = np.array([r.arena_head_bytes for r in rows], dtype=float)
    out = {"sram_vs_head": rel(np.array([r.sram_tflm_bytes for r in rows], float), head)}
    arena_model = np.array([r.sram_arena_bytes for r in rows], dtype=float)
    arena = np.array([r.arena_bytes for r in rows], dtype=float)
    sram_model = np.array([r.sram_tflm_bytes for r in rows], dtype=float)
    out["arena"] = rel(arena_model, arena)
    out["tail"] = rel(arena_model - sram_model, arena - head)
    ops = np.array([r.ops_modelled for r in rows], dtype=float)
    size = np.array([r.tflite_bytes for r in rows], dtype=float)
    if fit is None:
        out["flash"] = rel(np.array([r.flash_bytes for r in rows], float), size)
        out["sram_vs_arena_total"] = rel(
            np.array([r.sram_tflm_bytes for r in rows], float),
            np.array([r.arena_bytes for r in rows], float),
        )
    else:
        payload = np.array([r.flash_payload_bytes for r in rows], dtype=float)
        flash = payload + fit["flash_fixed_bytes"] + fit["flash_per_op_bytes"] * ops
        out["flash"] = rel(flash, size)
        tail = fit["arena_tail_fixed_bytes"] + fit["arena_tail_per_op_bytes"] * ops
        out["arena_total"] = rel(
            np.array([r.sram_tflm_bytes for r in rows], float) + tail,
            np.array([r.arena_bytes for r in rows], dtype=float),
        )
    summary: dict[str, float] = {}
    for key, e in out.items():
        summary[f"{key}_worst_pct"] = float(e[np.argmax(np.abs(e))])
        summary[f"{key}_mean_abs_pct"] = float(np.mean(np.abs(e)))
    return summary


def mcu_validation(
    spaces: tuple[str, ...], per_space: int, seed: int = 0, log=print, out: Path | None = None
) -> list[Measured]:
    """Measure ``per_space`` random subnets of each space (``space.sample`` with ``seed``);
    with ``out``, the rows so far are saved as JSON after each subnet (and the ``.tflite``
    files beside it)."""
    rows: list[Measured] = []
    for name in spaces:
        space = get_space(name)
        rng = np.random.default_rng(seed)
        for i in range(per_space):
            config = space.sample(rng)
            keep = out.with_name(f"{out.stem}-{name}-{i}.tflite") if out else None
            rows.append(measure_subnet(name, config, seed=i, keep=keep))
            if out is not None:
                out.write_text(json.dumps({"rows": [asdict(r) for r in rows]}, indent=1))
            r = rows[-1]
            log(f"{name} #{i}: r{config.resolution} arena head {r.arena_head_bytes} (model "
                f"{r.sram_tflm_bytes}), total {r.arena_bytes}; .tflite {r.tflite_bytes} (model "
                f"{r.flash_bytes}); {r.seconds:.0f} s")  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["mbv3-tiny", "mbv3-tiny-w0.5-r32"])
    parser.add_argument("--per-space", type=int, default=10)
    parser.add_argument("--fit-per-space", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON of every measured subnet")
    parser.add_argument(
        "--load",
        type=Path,
        nargs="+",
        default=None,
        help="re-analyse saved --out files (measurements kept, model re-run)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.load:
        saved = [r for f in args.load for r in json.loads(f.read_text())["rows"]]
        rows = [remodel(Measured(**r)) for r in saved]
    else:
        rows = mcu_validation(tuple(args.spaces), args.per_space, args.seed, out=args.out)
    for r in rows:
        err = 100.0 * (r.sram_tflm_bytes - r.arena_head_bytes) / r.arena_head_bytes
        whole = 100.0 * (r.sram_arena_bytes - r.arena_bytes) / r.arena_bytes
        print(f"{r.space} r{r.config['resolution']}: arena head {r.arena_head_bytes}, model "
              f"tflm {r.sram_tflm_bytes} ({err:+.2f}%), total {r.arena_bytes}, model tflm-arena "
              f"{r.sram_arena_bytes} ({whole:+.3f}%); .tflite {r.tflite_bytes}, model "
              f"{r.flash_bytes}")  # fmt: skip
    print(f"{len(rows)} subnets; as modelled: {errors(rows)}")
    for space in sorted({r.space for r in rows}):
        mine = [r for r in rows if r.space == space]
        e = errors(mine)
        print(f"{space}: {len(mine)} subnets; worst: planned {e['sram_vs_head_worst_pct']:+.2f}%, "
              f"whole arena {e['arena_worst_pct']:+.3f}% (tail {e['tail_worst_pct']:+.3f}%), "
              f"Flash {e['flash_worst_pct']:+.2f}%")  # fmt: skip
    if args.fit_per_space:
        k = args.fit_per_space
        spaces = sorted({r.space for r in rows})
        fit_rows = [r for s in spaces for r in [q for q in rows if q.space == s][:k]]
        held = [r for r in rows if r not in fit_rows]
        fit = fit_overheads(fit_rows)
        print(f"fit on {len(fit_rows)}: {fit}")
        if held:
            print(f"held-out {len(held)} subnets with the fit: {errors(held, fit)}")


if __name__ == "__main__":
    main()
