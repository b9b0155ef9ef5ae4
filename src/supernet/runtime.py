"""Where and how a run executes: device, mixed precision, distributed rank, RNGs, threads.

Chosen once at the top of a run and passed down explicitly (nanoGPT style)::

    rt = detect_runtime("auto", amp="auto")
    np_rng, torch_rng = make_generators(seed + rt.rank)
    model.to(rt.device)
    with rt.autocast():
        loss = model(x)

Nothing here touches global RNG state: randomness goes through the explicit generators
returned by :func:`make_generators`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch

from supernet.errors import ConfigError

__all__ = ["Runtime", "detect_runtime", "make_generators", "set_threads"]

logger = logging.getLogger(__name__)

MAX_THREADS = 1024
"""Upper bound on a thread count (a typo like 10**6 would otherwise start that many threads)."""

_AMP_CHOICES = {
    "auto": "auto",
    "on": True,
    "true": True,
    "off": False,
    "false": False,
    "none": False,
    "fp32": False,
    "float32": False,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


@dataclass(frozen=True)
class Runtime:
    """The execution environment of one process of a run.

    Attributes:
        device: the device this process computes on.
        amp_dtype: the autocast dtype, or None for full precision.
        rank: global rank of this process (0 without torchrun).
        local_rank: rank on this node; selects the GPU under torchrun.
        world_size: number of processes (1 without torchrun).
    """

    device: torch.device
    amp_dtype: torch.dtype | None
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes checkpoints (rank 0)."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """True when the run has more than one process."""
        return self.world_size > 1

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context manager for the forward pass: autocast to ``amp_dtype``, or a no-op."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


def detect_runtime(device: str = "auto", *, amp: bool | str = "auto") -> Runtime:
    """Pick the device, autocast dtype and distributed ranks for this process.

    Args:
        device: ``"auto"`` (``cuda:LOCAL_RANK`` if CUDA is available, else ``mps`` if
            available, else ``cpu``), ``"cpu"``, ``"cuda"`` (means ``cuda:LOCAL_RANK``),
            ``"cuda:N"`` or ``"mps"``.
        amp: ``"auto"`` (bfloat16 on CUDA where supported, else float16 on CUDA; none on
            CPU/MPS); ``False``/``"off"``/``"none"``/``"fp32"`` (none); ``True``/``"on"``
            (like auto on CUDA, bfloat16 on CPU, float16 on MPS); or an explicit dtype name
            ``"bfloat16"``/``"bf16"``/``"float16"``/``"fp16"``.

    The ranks are read from the torchrun variables ``RANK``, ``LOCAL_RANK`` and
    ``WORLD_SIZE`` (defaults 0, 0 and 1).

    Raises:
        ConfigError: the device is unknown or not available here (the message names the
            value and the available choices), ``amp`` is not one of the choices, or a rank
            variable is malformed.
    """
    rank, local_rank, world_size = _read_ranks()
    dev = _pick_device(device, local_rank)
    amp_dtype = _pick_amp(amp, dev)
    rt = Runtime(
        device=dev, amp_dtype=amp_dtype, rank=rank, local_rank=local_rank, world_size=world_size
    )
    logger.info(
        "runtime: device=%s amp=%s rank=%d/%d local_rank=%d",
        dev,
        amp_dtype,
        rank,
        world_size,
        local_rank,
    )
    return rt


def make_generators(seed: int) -> tuple[np.random.Generator, torch.Generator]:
    """Return independent NumPy and torch (CPU) generators derived from ``seed``.

    The two are seeded from ``np.random.SeedSequence(seed).spawn(2)``, so the same seed
    always gives the same streams and the two streams are independent. Global RNG state
    (``np.random.seed``, ``torch.manual_seed``) is not touched. Under torchrun pass a
    per-rank seed (e.g. ``seed + rank``) where ranks should draw different numbers.

    Raises:
        ConfigError: ``seed`` is not a non-negative int.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    np_seq, torch_seq = np.random.SeedSequence(int(seed)).spawn(2)
    np_gen = np.random.Generator(np.random.PCG64(np_seq))
    torch_seed = int(torch_seq.generate_state(1, dtype=np.uint64)[0])
    torch_gen = torch.Generator(device="cpu")
    torch_gen.manual_seed(torch_seed)
    return np_gen, torch_gen


def set_threads(num_threads: int | None) -> None:
    """Set the number of intra-op CPU threads torch uses; ``None`` leaves the default.

    Raises:
        ConfigError: ``num_threads`` is not an int in [1, MAX_THREADS].
    """
    if num_threads is None:
        return
    if (isinstance(num_threads, bool) or not isinstance(num_threads, int)
            or not 1 <= num_threads <= MAX_THREADS):  # fmt: skip
        raise ConfigError(
            f"num_threads must be an integer in [1, {MAX_THREADS}], got {num_threads!r}"
        )
    torch.set_num_threads(num_threads)
    logger.debug("torch intra-op threads set to %d", num_threads)


# --------------------------------------------------------------------------- helpers


def _read_ranks() -> tuple[int, int, int]:
    rank = _env_int("RANK", 0, minimum=0)
    local_rank = _env_int("LOCAL_RANK", 0, minimum=0)
    world_size = _env_int("WORLD_SIZE", 1, minimum=1)
    if rank >= world_size:
        raise ConfigError(f"RANK={rank} must be smaller than WORLD_SIZE={world_size}")
    if local_rank >= world_size:
        raise ConfigError(f"LOCAL_RANK={local_rank} must be smaller than WORLD_SIZE={world_size}")
    return rank, local_rank, world_size


def _env_int(name: str, default: int, *, minimum: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(
            f"environment variable {name}={raw!r} is not an integer (torchrun sets it)"
        ) from None
    if value < minimum:
        raise ConfigError(f"environment variable {name}={raw!r} must be >= {minimum}")
    return value


def _available_devices() -> list[str]:
    choices = ["auto", "cpu"]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        choices += ["cuda"] + [f"cuda:{i}" for i in range(count)]
    if _mps_available():
        choices.append("mps")
    return choices


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _unavailable(device: object, why: str) -> ConfigError:
    return ConfigError(
        f"device {device!r} {why}; available here: {', '.join(_available_devices())} "
        "(allowed forms: auto, cpu, cuda, cuda:N, mps)"
    )


def _pick_device(device: str, local_rank: int) -> torch.device:
    if not isinstance(device, str):
        raise _unavailable(device, "is not a device name")
    name = device.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return _cuda_device(local_rank, device)
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise _unavailable(device, "is not available (no MPS backend)")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        index_text = name[len("cuda:") :] if ":" in name else None
        if index_text is not None and not index_text.isdigit():
            raise _unavailable(device, "is not a known device")
        if not torch.cuda.is_available():
            raise _unavailable(device, "is not available (CUDA is not available)")
        index = local_rank if index_text is None else int(index_text)
        return _cuda_device(index, device)
    raise _unavailable(device, "is not a known device")


def _cuda_device(index: int, requested: str) -> torch.device:
    count = torch.cuda.device_count()
    if index >= count:
        raise _unavailable(
            requested, f"needs CUDA device {index} but only {count} device(s) are visible"
        )
    return torch.device("cuda", index)


def _pick_amp(amp: bool | str, device: torch.device) -> torch.dtype | None:
    if isinstance(amp, bool):
        choice: object = amp
    elif isinstance(amp, str) and amp.strip().lower() in _AMP_CHOICES:
        choice = _AMP_CHOICES[amp.strip().lower()]
    else:
        raise ConfigError(
            f"amp must be True, False or one of {', '.join(_AMP_CHOICES)}; got {amp!r}"
        )
    if choice is False:
        return None
    if isinstance(choice, torch.dtype):
        return choice
    if device.type == "cuda":
        return torch.bfloat16 if _cuda_bf16_supported(device) else torch.float16
    if choice is True:
        return torch.bfloat16 if device.type == "cpu" else torch.float16
    return None  # "auto" off CUDA: full precision


def _cuda_bf16_supported(device: torch.device) -> bool:
    try:
        with torch.cuda.device(device):
            return bool(torch.cuda.is_bf16_supported())
    except Exception:  # pragma: no cover - depends on the GPU
        return False
