"""A chosen subnet as deployable files: ONNX, TorchScript and ``subnet.json``, checked for equality.

:func:`export_subnet` writes three files into one directory, each atomically (temp file, fsync,
rename):

- ``subnet.onnx``: the eval-mode subnet (BatchNorm folded by constant folding), opset
  :data:`~supernet.export.onnx.OPSET`, traced at batch 1 with a dynamic batch axis; graph input
  ``"input"`` ``[B, C, R, R]``, output ``"output"`` logits ``[B, num_classes]``.
- ``subnet.pt``: TorchScript of the eval-mode subnet, compiled with ``torch.jit.script`` (the
  static :class:`~supernet.nn.MobileNetV3` has no data-dependent control flow, so tracing works
  too, but scripting keeps batch size and resolution free and takes about half as long). torch
  2.13 deprecates ``torch.jit`` in favour of ``torch.export``; its warnings are silenced here and
  only here, because TorchScript is still what C++ / mobile runtimes load.
- ``subnet.json``: space, config, input shape, normalization, versions, file hashes, the
  equivalence check, and the caller's metadata (accuracy, MACs, memory, latency: the caller
  measures them); layout in :mod:`supernet.export.metadata`.

Both binaries are verified before anything is written: onnxruntime and TorchScript run the same
images as the eager subnet and the max abs difference of the logits must be ``<= tolerance``.

Reference: Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Sec. 3.4 (specialized subnets
are deployed without retraining); ONNX opset 17; TorchScript (``torch.jit``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from supernet import __version__
from supernet.checkpoint import new_file_mode
from supernet.errors import ConfigError, ExportError
from supernet.export.metadata import (
    FORMAT_VERSION,
    METADATA_FILE,
    check_normalization,
    file_entry,
    read_metadata,
    to_json_data,
)
from supernet.export.onnx import INPUT_NAME, OPSET, OUTPUT_NAME, export_onnx, make_session
from supernet.space import ArchConfig, SearchSpace

if TYPE_CHECKING:
    from collections.abc import Iterator

    import onnxruntime

__all__ = [
    "CHECK_BATCH_SIZE",
    "FORMAT_VERSION",
    "METADATA_FILE",
    "ONNX_FILE",
    "TORCHSCRIPT_FILE",
    "ExportResult",
    "export_subnet",
    "load_exported",
]

logger = logging.getLogger(__name__)

ONNX_FILE = "subnet.onnx"
TORCHSCRIPT_FILE = "subnet.pt"

CHECK_BATCH_SIZE = 8
"""Random images checked when the caller gives none."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_subnet` wrote and how closely the exported forms match the subnet.

    Attributes:
        out_dir: the export directory.
        onnx_path, torchscript_path, metadata_path: the three files written.
        onnx_max_abs_diff: max |onnxruntime logits - eager logits| over the check images.
        torchscript_max_abs_diff: the same for the TorchScript file.
        check_images: number of images compared.
        export_seconds: wall time of conversion, verification and writing, in s.
        metadata: the content of ``subnet.json``.
    """

    out_dir: Path
    onnx_path: Path
    torchscript_path: Path
    metadata_path: Path
    onnx_max_abs_diff: float
    torchscript_max_abs_diff: float
    check_images: int
    export_seconds: float
    metadata: dict[str, Any]


def export_subnet(
    subnet: nn.Module,
    config: ArchConfig,
    space: SearchSpace,
    out_dir: str | os.PathLike[str],
    *,
    metadata: dict[str, Any],
    check_images: torch.Tensor | None = None,
    tolerance: float = 1e-4,
    seed: int = 0,
) -> ExportResult:
    """Write ``subnet`` as ONNX, TorchScript and ``subnet.json`` into ``out_dir``, verified.

    The subnet is copied to the CPU in eval mode (BatchNorm uses its running statistics); the
    caller's module is left as it was. Files already in ``out_dir`` are replaced only when the
    export verifies.

    Shapes: the subnet maps ``[B, space.input_channels, R, R]`` images (``R =
    config.resolution``) to logits ``[B, space.num_classes]``; ``check_images`` is ``[N, C, R,
    R]`` float, normalized like training; without it ``CHECK_BATCH_SIZE`` standard-normal
    images are drawn from ``torch.Generator().manual_seed(seed)``.

    Args:
        subnet: the extracted static subnet (e.g. ``supernet.get_subnet(config)``).
        config: its architecture; saved with :meth:`ArchConfig.to_dict`.
        space: the space ``config`` belongs to (its name, input channels and classes are saved).
        out_dir: the export directory; created if missing.
        metadata: plain data saved under ``"metadata"`` in ``subnet.json``, e.g.
            ``predicted_accuracy``, ``measured_accuracy`` (%), ``macs``, ``params``,
            ``peak_memory_bytes``, ``predicted_latency_ms``, ``measured_latency_ms``. NumPy
            scalars and arrays are converted; non-finite floats are refused (use ``None`` for a
            value not measured). An optional ``"normalization": {"mean": [...], "std": [...]}``
            (one value per input channel, for images scaled to [0, 1]) is saved at the top level.
        check_images: images to compare the exported forms on (default: random, see Shapes).
        tolerance: largest allowed max abs difference of the logits, for ONNX and TorchScript.
        seed: seed of the random check images.

    Returns:
        An :class:`ExportResult` with both max abs differences and the export time.

    Raises:
        ConfigError: ``config`` is not valid in ``space`` or differs from ``subnet.config``;
            ``check_images`` has the wrong shape; ``metadata`` is not JSON-ready or its
            normalization is malformed; ``tolerance`` is negative.
        ExportError: the subnet cannot be converted, or onnxruntime or TorchScript output differs
            from the eager subnet by more than ``tolerance`` (nothing is written then).
    """
    start = time.perf_counter()
    config.validate(space)
    own_config = getattr(subnet, "config", None)
    if isinstance(own_config, ArchConfig) and own_config != config:
        raise ConfigError(f"the subnet was extracted for {own_config}, not for {config}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance < 0:
        raise ConfigError(f"tolerance = {tolerance!r} must be a number >= 0")
    if not isinstance(metadata, dict):
        raise ConfigError(f"metadata must be a dict, got {type(metadata).__name__}")
    extra = to_json_data(dict(metadata), "metadata")
    normalization = extra.pop("normalization", None)
    if normalization is not None:
        normalization = check_normalization(normalization, space.input_channels)
    shape = (1, space.input_channels, config.resolution, config.resolution)
    images, images_source = _check_images(check_images, shape, seed)

    model = copy.deepcopy(subnet).to("cpu").eval()
    with torch.inference_mode():
        expected = model(images).numpy()
    try:
        onnx_bytes = export_onnx(model, shape, dynamic_batch=True)
    except ConfigError as exc:
        raise ExportError(str(exc)) from exc
    torchscript_bytes = _torchscript(model)

    onnx_diff = _max_abs_diff(_run_onnx(onnx_bytes, images), expected, "ONNX")
    ts_out = _run_torchscript(torchscript_bytes, images)
    torchscript_diff = _max_abs_diff(ts_out, expected, "TorchScript")
    max_abs_logit = float(np.abs(expected).max())  # float32 rounding grows with it
    for name, diff in (("ONNX (onnxruntime)", onnx_diff), ("TorchScript", torchscript_diff)):
        if not diff <= tolerance:  # also catches NaN
            raise ExportError(
                f"{name} output differs from the PyTorch subnet by max abs {diff:.3g} on "
                f"{len(images)} images, more than tolerance {tolerance:g} (ONNX {onnx_diff:.3g}, "
                f"TorchScript {torchscript_diff:.3g}, logits up to {max_abs_logit:.3g} in "
                f"magnitude); nothing was written to {out_dir}"
            )

    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "space": space.name,
        "config": config.to_dict(),
        "input_shape": list(shape),
        "output_shape": [1, int(expected.shape[1])],
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "dynamic_batch": True,
        "normalization": normalization,
        "onnx_opset": OPSET,
        "versions": _versions(),
        "files": {
            "onnx": file_entry(ONNX_FILE, onnx_bytes),
            "torchscript": file_entry(TORCHSCRIPT_FILE, torchscript_bytes),
        },
        "verification": {
            "onnx_max_abs_diff": onnx_diff,
            "torchscript_max_abs_diff": torchscript_diff,
            "tolerance": float(tolerance),
            "max_abs_logit": max_abs_logit,
            "images": len(images),
            "images_source": images_source,
        },
        "metadata": extra,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / ONNX_FILE, onnx_bytes)
    _write_atomic(out / TORCHSCRIPT_FILE, torchscript_bytes)
    _write_atomic(out / METADATA_FILE, (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode())
    _fsync_directory(out)
    seconds = time.perf_counter() - start
    logger.info(
        "exported %s subnet to %s in %.2f s (max abs diff: ONNX %.2e, TorchScript %.2e)",
        space.name, out, seconds, onnx_diff, torchscript_diff,
    )  # fmt: skip
    return ExportResult(
        out_dir=out,
        onnx_path=out / ONNX_FILE,
        torchscript_path=out / TORCHSCRIPT_FILE,
        metadata_path=out / METADATA_FILE,
        onnx_max_abs_diff=onnx_diff,
        torchscript_max_abs_diff=torchscript_diff,
        check_images=len(images),
        export_seconds=seconds,
        metadata=doc,
    )


def load_exported(
    out_dir: str | os.PathLike[str], *, threads: int = 1, space: SearchSpace | None = None
) -> tuple[onnxruntime.InferenceSession, dict[str, Any]]:
    """An onnxruntime session for an export directory, and its ``subnet.json``.

    Shapes: the session takes ``{"input": float32 [B, C, R, R]}`` (``metadata["input_shape"]``
    with any ``B`` when ``metadata["dynamic_batch"]``) and returns ``[logits [B, num_classes]]``.

    Args:
        out_dir: a directory written by :func:`export_subnet`.
        threads: intra-op threads of the session.
        space: the space the export must be of (default: any); its config must be valid there.

    Raises:
        ExportError: ``subnet.json`` is missing, not JSON, of another format version or space,
            lacks a key or holds a malformed value (see
            :func:`~supernet.export.metadata.read_metadata`); or ``subnet.onnx`` is missing or
            its SHA-256 differs from the one recorded (a stale or partial export), or
            onnxruntime cannot load it. A ``subnet.json`` of another library version is read
            with a logged warning.
        ConfigError: ``threads`` < 1.
    """
    out = Path(out_dir)
    path = out / METADATA_FILE
    doc = read_metadata(out, space)
    if "onnx" not in doc["files"]:
        raise ExportError(f"{path} records no ONNX file name and sha256")
    entry = doc["files"]["onnx"]
    onnx_path, recorded = out / entry["name"], entry["sha256"]
    if not onnx_path.is_file():
        raise ExportError(f"{onnx_path} does not exist, but {path} lists it")
    data = onnx_path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != recorded:
        raise ExportError(
            f"{onnx_path} has sha256 {actual[:12]}…, {path} records {str(recorded)[:12]}…: "
            "the directory holds files of different exports"
        )
    try:
        session = make_session(data, threads=threads)
    except ConfigError:
        raise
    except Exception as exc:  # onnxruntime's pybind errors have no common public base
        raise ExportError(
            f"{onnx_path} cannot be loaded by onnxruntime: {' '.join(str(exc).split())}"
        ) from exc
    return session, doc


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence torch 2.13's "`torch.jit.*` is deprecated" warnings (see the module docstring)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*`torch\.jit\.\w+` is deprecated.*")
        yield


def _torchscript(model: nn.Module) -> bytes:
    buf = io.BytesIO()
    try:
        with _quiet_jit():
            torch.jit.save(torch.jit.script(model), buf)
    except Exception as exc:  # the compiler raises many types; name the module and chain them
        raise ExportError(
            f"could not compile {type(model).__name__} to TorchScript: {exc}"
        ) from exc
    return buf.getvalue()


def _run_torchscript(data: bytes, images: torch.Tensor) -> np.ndarray:
    """Logits of the TorchScript bytes as loaded (no ``.eval()``: the file must be in eval mode)."""
    try:
        with _quiet_jit():
            module = torch.jit.load(io.BytesIO(data), map_location="cpu")
        with torch.inference_mode():
            return module(images).numpy()
    except Exception as exc:  # TorchScript raises many types; say which step failed
        raise ExportError(f"the TorchScript subnet does not run: {exc}") from exc


def _run_onnx(data: bytes, images: torch.Tensor) -> np.ndarray:
    """Logits of the ONNX bytes on ``images`` (the whole batch: checks the dynamic batch axis)."""
    session = make_session(data, threads=1)
    try:
        return session.run(None, {INPUT_NAME: images.numpy()})[0]
    except Exception as exc:  # onnxruntime's pybind errors have no common public base
        raise ExportError(f"onnxruntime cannot run the exported subnet: {exc}") from exc


def _max_abs_diff(actual: np.ndarray, expected: np.ndarray, name: str) -> float:
    if actual.shape != expected.shape:
        raise ExportError(
            f"{name} output has shape {list(actual.shape)}, the subnet's {list(expected.shape)}"
        )
    return float(np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64))))


def _check_images(
    images: torch.Tensor | None, shape: tuple[int, ...], seed: int
) -> tuple[torch.Tensor, str]:
    """Check images as float32 CPU ``[N, C, R, R]`` and how they were chosen."""
    if images is None:
        generator = torch.Generator().manual_seed(seed)
        return torch.randn((CHECK_BATCH_SIZE, *shape[1:]), generator=generator), f"randn({seed})"
    if (
        not isinstance(images, torch.Tensor)
        or not images.is_floating_point()
        or images.ndim != 4
        or tuple(images.shape[1:]) != shape[1:]
        or len(images) == 0
    ):
        got = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ConfigError(
            f"check_images must be float [N >= 1, {', '.join(map(str, shape[1:]))}], got {got}"
        )
    return images.detach().to("cpu", torch.float32).contiguous(), "given"


def _versions() -> dict[str, str]:
    import onnxruntime

    return {
        "supernet": __version__,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file beside ``path``, fsync, chmod as a new file (0644 under umask 022),
    rename over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):  # mkstemp makes 0600; exported files are for sharing
            os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_directory(directory: Path) -> None:
    """Make the renames durable; skipped where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # platform dependent
            os.fsync(fd)
    finally:
        os.close(fd)
