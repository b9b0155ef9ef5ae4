"""Decode throughput of the streaming image-folder loader: 224-px JPEGs, 2 worker processes.

    python -m benches.decode_throughput [--images 400] [--workers 2] [--size 224]

Writes ``--images`` synthetic JPEGs of 500 x 375 pixels (the typical ImageNet shape; smooth
gradients plus noise, quality 90) to a temporary folder of 10 classes, then streams them once with
:class:`supernet.data.stream.StreamLoader` (decode, shorter side to 224 / 0.875, centre crop 224;
batch 64, no augmentation) with 0 and with ``--workers`` worker processes, and prints images/s for
each and their ratio (the 0-worker pass, in this process, is the baseline of the same run). A
throughput figure, not a test: the machine's other load moves it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from supernet.data import index_image_folder
from supernet.data.stream import FolderStream, StreamLoader


def write_jpegs(root: Path, n: int, seed: int = 0) -> None:
    """``n`` synthetic 500 x 375 RGB JPEGs in 10 class folders under ``root``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:375, 0:500].astype(np.float32)
    for i in range(n):
        folder = root / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        a, b, c = rng.uniform(0.1, 1.0, 3)
        base = np.stack([xx * a, yy * b, (xx + yy) * c], axis=-1) % 256
        pixels = (base + rng.normal(0, 12, base.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(folder / f"{i:05d}.jpg", quality=90)


def images_per_second(root: Path, workers: int, size: int) -> float:
    """One pass over the folder's images; decoded images per second."""
    items = index_image_folder(root, val_fraction=0, test_fraction=0).splits["train"]
    stream = FolderStream(items, size=size, channels=3, recipe="imagenet", train=False)
    loader = StreamLoader(stream, 64, mean=(0.5,) * 3, std=(0.25,) * 3, shuffle=False,
                          augment=False, workers=workers)  # fmt: skip
    start = time.perf_counter()
    n = sum(len(y) for _, y in loader)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_jpegs(root, args.images)
        images_per_second(root, 0, args.size)  # warm the page cache
        base = images_per_second(root, 0, args.size)
        parallel = images_per_second(root, args.workers, args.size)
    print(f"{args.images} JPEGs 500x375 -> {args.size} px: 0 workers {base:.0f} images/s, "
          f"{args.workers} workers {parallel:.0f} images/s ({parallel / base:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
