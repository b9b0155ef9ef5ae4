"""Folder training vs IDX training on the same Fashion-MNIST images (issue 25's folder target).

The same images reach a training run two ways: as IDX files (``dataset: fashion-mnist``, read by
:func:`supernet.data.load_fashion_mnist` from ``$SUPERNET_DATA``) and as PNGs in a folder tree
(``dataset: folder:ROOT``, decoded by Pillow). Only the data path differs:

* Images: the first ``--n-train`` images of the standard train split (seed 0), the preset's
  ``val_limit`` first images of the standard val split (the only val images a run scores) and
  all 10,000 t10k test images, as PNGs in ``ROOT/{train,val,test}/CLASS/``; the IDX copy holds
  the same images in a private directory (a train file of ``n_train + 10,000`` images laid out
  so that the loader's seeded train/val split (``val_size`` 10,000) returns exactly these train
  images, and a val split that starts with these val images).
* Order: every split (of val, that prefix) sorted by class (stable), in both copies, so that
  the folder listing (sorted class folders, zero-padded file names) and the IDX order agree
  image for image — the shuffled batches, the BN-calibration subset and the ``val_limit``
  prefix are then the same.
* Size: ``image_size=28`` for the folder run keeps the PNGs at their native 28 px (the folder
  default, the space's largest resolution 32, would upsample them with Pillow at load time while
  the IDX run resizes 28 px tensors per batch). The quick preset trains without augmentation, so
  neither path's augmentation (pad-crop-flip vs random-resized-crop-flip) runs.

Both runs then train with the preset's recipe, same seed and thread count, and ``supernet eval``
scores them on the test split; the table gives each subnet's test accuracy and the difference in
points. Run: ``nice -n 10 env PYTHONPATH=src:. python -m benches.folder_vs_idx --work DIR``.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from supernet.data import FASHION_MNIST_FILES, load_fashion_mnist, write_idx
from supernet.train import load_config

__all__ = [
    "CLASS_NAMES",
    "VAL_SIZE",
    "class_sorted",
    "val_prefix",
    "write_idx_dir",
    "write_png_tree",
]

CLASS_NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
               "bag", "ankle-boot")  # fmt: skip
"""Fashion-MNIST's labels 0..9 (Xiao et al., arXiv 1708.07747, Table 1)."""
VAL_SIZE = 10_000
"""The val split :func:`supernet.data.load_fashion_mnist` carves out of the train file."""

Split = tuple[np.ndarray, np.ndarray]  # images uint8 [N, 28, 28], labels [N]


def class_sorted(images: np.ndarray, labels: np.ndarray) -> Split:
    """The split sorted by label, keeping the order within a class (a stable sort)."""
    order = np.argsort(labels, kind="stable")
    return images[order], labels[order]


def write_idx_dir(
    directory: Path, train: Split, val: Split, test: Split, *, seed: int = 0, compress: bool = True
) -> Path:
    """Write the four Fashion-MNIST IDX files so that ``load_fashion_mnist(directory, seed=seed)``
    returns ``train``, ``val`` and ``test`` exactly, in these orders.

    The loader draws ``np.random.default_rng(seed).permutation(n)`` over the train file and
    takes the sorted first ``VAL_SIZE`` positions as val, the sorted rest as train; the images
    are placed at those positions. ``compress=False`` writes the files without ``.gz`` (the
    loader takes either). Shapes: images uint8 [N, H, W], labels [N] (0..9).
    """
    (train_x, train_y), val_y = train, val[1]
    if len(val_y) != VAL_SIZE:
        raise ValueError(f"val holds {len(val_y)} images; the IDX loader takes {VAL_SIZE}")
    n = len(train_y) + VAL_SIZE
    perm = np.random.default_rng(seed).permutation(n)
    file_x = np.empty((n, *train_x.shape[1:]), np.uint8)
    file_y = np.empty(n, np.uint8)
    for positions, (x, y) in ((np.sort(perm[VAL_SIZE:]), train), (np.sort(perm[:VAL_SIZE]), val)):
        file_x[positions], file_y[positions] = x, y
    directory.mkdir(parents=True, exist_ok=True)
    arrays = (file_x, file_y, test[0].astype(np.uint8), test[1].astype(np.uint8))
    for name, array in zip(FASHION_MNIST_FILES, arrays, strict=True):
        write_idx(directory / (name if compress else name.removesuffix(".gz")), array)
    return directory


def write_png_tree(root: Path, splits: dict[str, Split], *, skip_existing: bool = False) -> int:
    """Write ``ROOT/SPLIT/LABEL-NAME/NNNNN.png`` (8-bit grey, lossless) for each split; the
    file number is the image's position in the split, so a folder listing (sorted class folders,
    sorted names) gives back a class-sorted split in its order. ``skip_existing`` keeps files
    already there. Returns the number of images in ``splits``."""
    from PIL import Image

    width = max(5, len(str(max(len(y) for _, y in splits.values()))))
    count = 0
    for split, (images, labels) in splits.items():
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / f"{int(label)}-{CLASS_NAMES[int(label)]}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{i:0{width}d}.png"
            if not (skip_existing and path.exists()):
                Image.fromarray(np.ascontiguousarray(image), "L").save(path)
            count += 1
    return count


def val_prefix(images: np.ndarray, labels: np.ndarray, val_images: int) -> tuple[Split, Split]:
    """(folder val split, IDX val split) for a run that scores the first ``val_images`` (its
    ``val_limit``) of the val split in order: the folder holds those images class-sorted, the
    IDX val split starts with them in the same order and holds the rest after them."""
    prefix = class_sorted(images[:val_images], labels[:val_images])
    idx_val = (np.concatenate([prefix[0], images[val_images:]]),
               np.concatenate([prefix[1], labels[val_images:]]))  # fmt: skip
    return prefix, idx_val


def _sources(n_train: int, val_images: int) -> tuple[dict[str, Split], Split]:
    """(PNG splits, IDX val split) from the standard Fashion-MNIST splits (seed 0): the first
    ``n_train`` train images and all of t10k, class-sorted, and the val split as
    :func:`val_prefix` lays it out (its first ``val_images`` are the ones the 50,000-image
    run scores)."""
    splits = load_fashion_mnist()
    train = class_sorted(splits.train.images[:n_train, 0].numpy(),
                         splits.train.labels[:n_train].numpy())  # fmt: skip
    test = class_sorted(splits.test.images[:, 0].numpy(), splits.test.labels.numpy())
    val, idx_val = val_prefix(splits.val.images[:, 0].numpy(), splits.val.labels.numpy(),
                              val_images)  # fmt: skip
    return {"train": train, "val": val, "test": test}, idx_val


def _train_and_eval(run_dir: Path, preset: str, sets: list[str], env: dict) -> subprocess.Popen:
    args = " ".join(f"--set {s}" for s in sets)
    py = sys.executable
    cmd = (f"{py} -m supernet train --preset {preset} --run-dir {run_dir} --force {args} "
           f"&& {py} -m supernet eval --run-dir {run_dir} --device cpu")  # fmt: skip
    log = open(run_dir.with_suffix(".log"), "w")  # noqa: SIM115 - closed by the child's exit
    return subprocess.Popen(cmd, shell=True, env=env, stdout=log, stderr=subprocess.STDOUT)


def _eval_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "eval.csv", newline="") as f:
        return list(csv.DictReader(f))


def identical_weights(run_a: Path, run_b: Path) -> tuple[int, int]:
    """(tensors equal bit for bit, tensors) of the two runs' final supernet weights."""
    from supernet.checkpoint import load_checkpoint

    a = load_checkpoint(run_a / "checkpoint.pt")[0]["model"]
    b = load_checkpoint(run_b / "checkpoint.pt")[0]["model"]
    return sum(k in b and bool((a[k] == b[k]).all()) for k in a), len(a)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True,
                        help="data go to WORK/idx and WORK/png (written once), runs to "
                             "WORK/runs-PRESET/{idx,folder}")  # fmt: skip
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--preset", default="fashion-mnist-quick")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    parser.add_argument("--val-images", type=int, default=None,
                        help="val images in the folder (default: the preset's val_limit; any "
                             "val_limit up to it scores the same images in both runs)")  # fmt: skip
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="extra override for both runs (e.g. image_limit=256)")  # fmt: skip
    args = parser.parse_args(argv)
    work = args.work.resolve()
    idx_dir, png_root, runs = work / "idx", work / "png", work / f"runs-{args.preset}"
    start = time.perf_counter()
    val_images = args.val_images or load_config(args.preset).val_images or VAL_SIZE
    marker = png_root / f"done-{args.n_train}-{val_images}"
    if not marker.exists():
        if any(png_root.glob("done-*")):  # written for other settings
            shutil.rmtree(png_root)
        sources, idx_val = _sources(args.n_train, val_images)
        write_idx_dir(idx_dir, sources["train"], idx_val, sources["test"])
        count = write_png_tree(png_root, sources, skip_existing=True)  # resumes a killed write
        marker.touch()
        print(f"wrote {count} PNGs and the IDX copy in {time.perf_counter() - start:.0f} s")
    runs.mkdir(parents=True, exist_ok=True)
    common = [f"threads={args.threads}", *args.sets]
    env = {**os.environ, "SUPERNET_DATA": str(idx_dir)}
    jobs = {
        "idx": _train_and_eval(runs / "idx", args.preset, common, env),
        "folder": _train_and_eval(
            runs / "folder",
            args.preset,
            [f"dataset=folder:{png_root}", "image_size=28", *common],
            env,
        ),
    }
    codes = {name: job.wait() for name, job in jobs.items()}
    print(f"trained and evaluated both in {time.perf_counter() - start:.0f} s: exit codes {codes}")
    if any(codes.values()):
        return 1
    idx_rows, folder_rows = _eval_rows(runs / "idx"), _eval_rows(runs / "folder")
    print(
        "\n| subnet | config | IDX test acc. (%) | folder test acc. (%) | folder - IDX (points) |"
    )
    print("|---|---|---:|---:|---:|")
    for a, b in zip(idx_rows, folder_rows, strict=True):
        ia, fa = float(a["accuracy"]), float(b["accuracy"])
        print(f"| {a['subnet']} | {a['config']} | {ia:.2f} | {fa:.2f} | {fa - ia:+.2f} |")
    print(f"test images scored: {idx_rows[0]['images']} (IDX), {folder_rows[0]['images']} (folder)")
    same, total = identical_weights(runs / "idx", runs / "folder")
    print(f"supernet weights equal bit for bit: {same} of {total} tensors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
