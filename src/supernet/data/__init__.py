"""Datasets, IDX reading, batched tensor transforms and a reproducible batch loader."""

from __future__ import annotations

from supernet.data.datasets import (
    DATASETS,
    DEBIAN_FASHION_MNIST_DIR,
    FASHION_MNIST_FILES,
    DatasetSplits,
    ImageDataset,
    fashion_mnist_dir,
    load_dataset,
    load_digits,
    load_fashion_mnist,
)
from supernet.data.folder import IMAGE_EXTENSIONS, list_image_folder, load_image_folder
from supernet.data.idx import read_idx, write_idx
from supernet.data.loader import BatchLoader
from supernet.data.transforms import random_crop, random_hflip, resize, to_float

__all__ = [
    "DATASETS",
    "DEBIAN_FASHION_MNIST_DIR",
    "FASHION_MNIST_FILES",
    "IMAGE_EXTENSIONS",
    "BatchLoader",
    "DatasetSplits",
    "ImageDataset",
    "fashion_mnist_dir",
    "list_image_folder",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_image_folder",
    "random_crop",
    "random_hflip",
    "read_idx",
    "resize",
    "to_float",
    "write_idx",
]
