"""Datasets, IDX reading, batched tensor transforms and a reproducible batch loader."""

from __future__ import annotations

from supernet.data.datasets import (
    AUGMENTATIONS,
    DATASETS,
    DEBIAN_FASHION_MNIST_DIR,
    FASHION_MNIST_FILES,
    FOLDER_PREFIX,
    DatasetSplits,
    ImageDataset,
    check_dataset_name,
    fashion_mnist_dir,
    load_dataset,
    load_digits,
    load_fashion_mnist,
)
from supernet.data.folder import (
    IMAGE_EXTENSIONS,
    FolderIndex,
    UnreadableImageError,
    index_image_folder,
    list_image_folder,
    load_image_folder,
    read_image,
)
from supernet.data.idx import read_idx, write_idx
from supernet.data.loader import BatchLoader
from supernet.data.transforms import (
    random_crop,
    random_hflip,
    random_resized_crop,
    resize,
    to_float,
)

__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "DEBIAN_FASHION_MNIST_DIR",
    "FASHION_MNIST_FILES",
    "FOLDER_PREFIX",
    "IMAGE_EXTENSIONS",
    "BatchLoader",
    "DatasetSplits",
    "FolderIndex",
    "ImageDataset",
    "UnreadableImageError",
    "check_dataset_name",
    "fashion_mnist_dir",
    "index_image_folder",
    "list_image_folder",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_image_folder",
    "random_crop",
    "random_hflip",
    "random_resized_crop",
    "read_idx",
    "read_image",
    "resize",
    "to_float",
    "write_idx",
]
