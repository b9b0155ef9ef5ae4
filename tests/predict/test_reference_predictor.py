"""``summary_features=False`` is the Once-for-All reference predictor (mit-han-lab/once-for-all,
``nas/accuracy_predictor/acc_predictor.py``): ``layers(x) + base_acc`` with ``base_acc`` a fixed,
non-trained constant (the mean of the targets) and targets as fractions, no rescaling by their
standard deviation."""

from __future__ import annotations

import numpy as np
import torch

from supernet.predict import train_predictor
from supernet.space import encode

from .test_accuracy import synthetic_dataset


def test_reference_mode_keeps_the_training_mean_fixed_and_the_scale_at_100():
    data = synthetic_dataset(120, seed=3)
    predictor, report = train_predictor(
        data, holdout=0.25, seed=1, hidden=(32, 32), epochs=5, summary_features=False
    )
    train_idx = np.setdiff1d(np.arange(len(data.configs)), report.holdout_index)
    train_mean = float(np.asarray(data.val_accuracy, dtype=np.float64)[train_idx].mean())
    assert not predictor.base_accuracy.requires_grad
    assert float(predictor.base_accuracy) == np.float32(train_mean)  # the constant, untouched
    assert float(predictor.accuracy_scale) == 100.0  # fractions -> percent; not the data's std
    assert float(np.std(data.val_accuracy)) < 5.0  # (so a std rescaling would differ from 100)
    # the forward pass is the reference's layers(x) + base_acc, in percent points
    x = torch.from_numpy(encode(list(data.configs[:10]), predictor.space))
    with torch.no_grad():
        reference = predictor.mlp(x).squeeze(-1) * 100.0 + predictor.base_accuracy
    np.testing.assert_allclose(predictor.predict_encoded(x), reference.double().numpy(),
                               rtol=1e-6)  # fmt: skip


def test_summary_mode_still_learns_its_base_and_rescales_by_std():
    data = synthetic_dataset(120, seed=3)
    predictor, report = train_predictor(data, holdout=0.25, seed=1, hidden=(32, 32), epochs=5)
    train_idx = np.setdiff1d(np.arange(len(data.configs)), report.holdout_index)
    y = torch.tensor(np.asarray(data.val_accuracy)[train_idx], dtype=torch.float32)
    assert predictor.base_accuracy.requires_grad
    assert float(predictor.accuracy_scale) == float(y.std())
    assert float(predictor.base_accuracy) != float(y.mean())  # moved by training
