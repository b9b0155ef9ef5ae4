"""RNG states as plain data, so a checkpoint read with ``weights_only=True`` can hold them.

NumPy generator states hold NumPy arrays and 128-bit ints, which a weights-only load refuses:
:func:`numpy_rng_state` turns them into tagged decimal strings and :func:`restore_numpy_rng`
builds the generator back (only from the bit generators listed here, by name). Torch generator
states are uint8 tensors already. Re-exported by :mod:`supernet.checkpoint`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from supernet.errors import CheckpointError

__all__ = ["numpy_rng_state", "restore_numpy_rng", "restore_torch_rng", "torch_rng_state"]

# NumPy bit generators restore_numpy_rng will construct (by name, from checkpoint data).
_BIT_GENERATORS = {
    "PCG64": np.random.PCG64,
    "PCG64DXSM": np.random.PCG64DXSM,
    "MT19937": np.random.MT19937,
    "Philox": np.random.Philox,
    "SFC64": np.random.SFC64,
}
_INT_TAG = "__int__"
_NDARRAY_TAG = "__ndarray__"
_DTYPE_TAG = "__dtype__"


def numpy_rng_state(gen: np.random.Generator) -> dict:
    """Return the state of a NumPy generator as plain data a weights-only load reads back.

    Ints (PCG64 states are 128-bit) become decimal strings and arrays become lists of
    decimal strings, tagged so :func:`restore_numpy_rng` can convert them back.
    """
    if not isinstance(gen, np.random.Generator):
        raise TypeError(f"expected a numpy.random.Generator, got {type(gen).__name__}")
    return _encode_np_state(gen.bit_generator.state)


def restore_numpy_rng(state: dict) -> np.random.Generator:
    """Build a NumPy generator from a state made by :func:`numpy_rng_state`.

    Raises:
        CheckpointError: the state is malformed or names an unknown bit generator.
    """
    try:
        decoded = _decode_np_state(state)
        name = decoded["bit_generator"]
        if name not in _BIT_GENERATORS:
            raise ValueError(
                f"unknown bit generator {name!r} (known: {', '.join(sorted(_BIT_GENERATORS))})"
            )
        bit_gen = _BIT_GENERATORS[name]()
        bit_gen.state = decoded
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"malformed numpy RNG state in checkpoint: {exc}") from exc
    return np.random.Generator(bit_gen)


def torch_rng_state(gen: torch.Generator) -> torch.Tensor:
    """Return the state of a torch generator (a uint8 CPU tensor)."""
    if not isinstance(gen, torch.Generator):
        raise TypeError(f"expected a torch.Generator, got {type(gen).__name__}")
    return gen.get_state().clone()


def restore_torch_rng(state: torch.Tensor, device: str | torch.device = "cpu") -> torch.Generator:
    """Build a torch generator on ``device`` from a state made by :func:`torch_rng_state`.

    Raises:
        CheckpointError: the state is not a uint8 tensor or does not fit the generator.
    """
    if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8:
        raise CheckpointError(
            f"malformed torch RNG state in checkpoint: expected a uint8 tensor, got "
            f"{getattr(state, 'dtype', type(state).__name__)}"
        )
    gen = torch.Generator(device=device)
    try:
        gen.set_state(state.detach().to("cpu"))
    except (RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"malformed torch RNG state in checkpoint: {exc}") from exc
    return gen


def _encode_np_state(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | np.integer):
        return {_INT_TAG: str(int(value))}
    if isinstance(value, np.ndarray):
        return {
            _NDARRAY_TAG: [str(int(x)) for x in value.ravel().tolist()],
            _DTYPE_TAG: str(value.dtype),
            "shape": [str(n) for n in value.shape],
        }
    if isinstance(value, dict):
        return {str(k): _encode_np_state(v) for k, v in value.items()}
    if isinstance(value, str | float) or value is None:
        return value
    raise TypeError(f"unexpected value of type {type(value).__name__} in numpy RNG state")


def _decode_np_state(value: Any) -> Any:
    if isinstance(value, dict):
        if _INT_TAG in value:
            return int(value[_INT_TAG])
        if _NDARRAY_TAG in value:
            dtype = np.dtype(value[_DTYPE_TAG])
            if dtype.kind not in "iu":
                raise ValueError(f"unexpected array dtype {dtype} in numpy RNG state")
            data = np.array([int(x) for x in value[_NDARRAY_TAG]], dtype=dtype)
            shape = [int(n) for n in value.get("shape", [data.size])]
            return data.reshape(shape)
        return {k: _decode_np_state(v) for k, v in value.items()}
    if isinstance(value, str | float | bool) or value is None:
        return value
    raise TypeError(f"unexpected value of type {type(value).__name__} in numpy RNG state")
