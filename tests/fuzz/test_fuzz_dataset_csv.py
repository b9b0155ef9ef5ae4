"""Fuzz ``acc_dataset.csv``: read_accuracy_dataset on rows with mutated cells and any bytes."""

from __future__ import annotations

import csv
import io

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.strategies import EXAMPLES, fuzz, nasty_text, outcome, raw_bytes, scalars

from supernet.errors import ConfigError
from supernet.predict import AccuracyDataset, read_accuracy_dataset, subnet_sequence
from supernet.predict.dataset import COLUMNS
from supernet.space import get_space

SPACE = get_space("mbv3-tiny")
ROWS = AccuracyDataset(
    SPACE, 0, tuple(subnet_sequence(SPACE, 2, seed=0)), np.array([90.0, 60.0, 75.5, 80.25]), 100
).rows()
cells = st.one_of(
    nasty_text,
    scalars.map(str),
    st.sampled_from(["nan", "inf", "-1", "100", "100.0001", "1e2", " 3", "0", "2", "7", '{"a":1}',
                     '{"resolution": 28}', ROWS[0]["config"], "\n", '"', ","]),
)  # fmt: skip
edits = st.lists(
    st.tuples(st.integers(0, len(ROWS) - 1), st.sampled_from(COLUMNS), cells), max_size=3
)


def _csv(columns, rows) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _read(path) -> None:
    data, error = outcome(lambda: read_accuracy_dataset(path, SPACE), ConfigError)
    if error is not None:
        assert str(path) in str(error)
        return
    assert len(data) >= 1 and ((data.val_accuracy >= 0) & (data.val_accuracy <= 100)).all()
    assert all(config.validate(SPACE) is config for config in data.configs)
    assert data.seed >= 0 and data.images >= 1


@fuzz(150)
@given(
    edits=edits,
    columns=st.sampled_from([list(COLUMNS), list(COLUMNS[:7]), list(COLUMNS[:-1]), ["x"]]),
    keep=st.integers(0, len(ROWS)),
    cut=st.none() | st.integers(0, 2000),
)
def test_accuracy_csv_with_mutated_cells(edits, columns, keep, cut, tmp_path):
    EXAMPLES["acc_csv.cells"] += 1
    rows = [dict(r) for r in ROWS]
    for row, column, value in edits:
        rows[row][column] = value
    text = _csv(columns, rows[:keep] if keep else rows)
    path = tmp_path / "acc_dataset.csv"
    path.write_bytes(text[:cut].encode("utf-8", "surrogatepass"))
    _read(path)


@fuzz(30)
@given(content=raw_bytes())
def test_accuracy_csv_of_any_bytes(content, tmp_path):
    EXAMPLES["acc_csv.bytes"] += 1
    path = tmp_path / "acc_dataset.csv"
    path.write_bytes(content)
    _read(path)
