"""Fuzz predictor files: mutated metadata and weights, truncated and flipped bytes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.strategies import EXAMPLES, fuzz, nasty_numbers, nasty_text, outcome, scalars

from supernet.checkpoint import load_checkpoint, save_checkpoint
from supernet.errors import CheckpointError
from supernet.predict import AccuracyPredictor, load_predictor, save_predictor
from supernet.space import get_space

SPACE = get_space("mbv3-tiny")
CONFIGS = [SPACE.largest(), SPACE.smallest()]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(payload, metadata, file bytes) of a small saved predictor."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("predictor") / "predictor.pt"
    save_predictor(path, AccuracyPredictor(SPACE, hidden=(8,)), SPACE)
    payload, metadata = load_checkpoint(path)
    return payload, metadata, path.read_bytes()


tensors = st.one_of(
    st.tuples(
        st.lists(st.integers(0, 9), max_size=3),
        st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bool, torch.float16]),
        st.sampled_from([0.0, 1.0, float("nan"), float("inf")]),
    ).map(lambda t: torch.full(t[0], t[2]).to(t[1]) if t[1] != torch.bool else torch.ones(t[0])),
    scalars,
)
metadata_values = st.one_of(
    scalars,
    st.lists(nasty_numbers, max_size=3),
    st.sampled_from([[8], [8, 8], [0], [10**9], (8,), "8", "accuracy-predictor", "mbv3-tiny", 1]),
)


def _load(path) -> None:
    loaded, error = outcome(lambda: load_predictor(path, SPACE), CheckpointError)
    if error is not None:
        assert str(path) in str(error)
        return
    predictor, metadata = loaded
    assert metadata["space"] == SPACE.name
    assert np.isfinite(predictor.predict_accuracy(CONFIGS)).all()


@fuzz(100)
@given(
    meta_changes=st.dictionaries(
        st.sampled_from(["kind", "predictor_format_version", "space", "encoding_version",
                         "num_features", "hidden", "library_version"]) | nasty_text,
        metadata_values,
        max_size=2,
    ),
    state_changes=st.dictionaries(
        st.sampled_from(["mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "base_accuracy",
                         "accuracy_scale"]) | nasty_text,
        tensors,
        max_size=2,
    ),
)  # fmt: skip
def test_predictor_files_with_mutated_metadata_and_weights(
    saved, tmp_path, meta_changes, state_changes
):
    EXAMPLES["predictor.mutated"] += 1
    payload, metadata, _ = saved
    state = {**payload["state_dict"], **state_changes}
    path = tmp_path / "predictor.pt"
    save_checkpoint(path, {"state_dict": state}, metadata={**metadata, **meta_changes})
    _load(path)


@fuzz(100)
@given(
    cut=st.integers(min_value=0, max_value=1 << 20),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), max_size=3),
)
def test_predictor_files_truncated_or_with_flipped_bytes(saved, tmp_path, cut, flips):
    EXAMPLES["predictor.bytes"] += 1
    data = bytearray(saved[2])
    for offset, mask in flips:
        data[offset % len(data)] ^= mask
    path = tmp_path / "predictor.pt"
    path.write_bytes(bytes(data[: cut % (len(data) + 1)]))
    _load(path)
