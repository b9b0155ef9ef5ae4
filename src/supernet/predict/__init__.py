"""Accuracy prediction: measure (subnet, accuracy) pairs of a trained run, fit an MLP predictor.

Reference: Once-for-All (Cai et al., ICLR'20, arXiv 1908.09791), Sec. 3.4.
"""

from supernet.predict.accuracy import (
    PREDICTOR_FORMAT_VERSION,
    PREDICTOR_KIND,
    AccuracyPredictor,
    PredictorReport,
    load_predictor,
    save_predictor,
    summary_map,
    train_predictor,
)
from supernet.predict.dataset import (
    ACC_DATASET,
    DEFAULT_SUBNETS,
    AccuracyDataset,
    collect_accuracy_dataset,
    read_accuracy_dataset,
    subnet_sequence,
)

__all__ = [
    "ACC_DATASET",
    "DEFAULT_SUBNETS",
    "PREDICTOR_FORMAT_VERSION",
    "PREDICTOR_KIND",
    "AccuracyDataset",
    "AccuracyPredictor",
    "PredictorReport",
    "collect_accuracy_dataset",
    "load_predictor",
    "read_accuracy_dataset",
    "save_predictor",
    "subnet_sequence",
    "summary_map",
    "train_predictor",
]
