"""Training on an image folder: `dataset: folder:PATH`, the run's saved statistics, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from supernet.data import load_image_folder
from supernet.errors import ConfigError
from supernet.train import load_run, train
from supernet.train.data import DATASET_RECORD, load_run_dataset
from supernet.train.trainer import build_supernet


def _folder(root, *, mode="L", n=12, corrupt=False):
    rng = np.random.default_rng(0)
    for c, name in enumerate(("bright", "dark")):
        (root / name).mkdir(parents=True)
        for i in range(n):
            shape = (30, 36) if mode == "L" else (30, 36, 3)
            pixels = rng.integers(0, 80, shape) + 150 * (1 - c)
            Image.fromarray(pixels.astype(np.uint8), mode).save(root / name / f"{i}.png")
    if corrupt:
        (root / "dark" / "broken.png").write_bytes(b"not a png")
    return root


def test_config_takes_a_folder_and_names_a_bad_dataset(tiny_config, tmp_path):
    assert tiny_config(dataset=f"folder:{tmp_path}").dataset == f"folder:{tmp_path}"
    for bad in ("folder:", "imagenet"):
        with pytest.raises(ConfigError, match=rf"dataset = '{bad}'; choose from .*folder:PATH"):
            tiny_config(dataset=bad)


def test_training_on_a_folder_saves_its_statistics_and_later_loads_reuse_them(
    tiny_config, tmp_path
):
    root = _folder(tmp_path / "images", corrupt=True)
    one_phase = [{"name": "full", "epochs": 1, "lr": 0.05, "kernel_sizes": "max",
                  "expand_ratios": "max", "depths": "max", "distill": False}]  # fmt: skip
    cfg = tiny_config(dataset=f"folder:{root}", phases=one_phase, threads=1)
    run_dir = tmp_path / "run"
    train(cfg, run_dir)
    record = json.loads((run_dir / DATASET_RECORD).read_text())
    assert record["classes"] == ["bright", "dark"] and record["channels"] == 1
    assert record["size"] == 32 and record["skipped"] == [str(root / "dark" / "broken.png")]
    assert sum(record["images"].values()) == 24
    fresh = load_image_folder(root, size=32, recipe="imagenet", augment=cfg.augment)
    assert record["mean"] == list(fresh.train.mean)
    # later commands take the saved statistics, not recomputed ones
    record["mean"] = [0.25]
    (run_dir / DATASET_RECORD).write_text(json.dumps(record))
    run = load_run(run_dir, device="cpu")
    assert run.splits.train.mean == (0.25,) and run.splits.input_size == 32
    (root / "third").mkdir()
    (root / "dark" / "0.png").rename(root / "third" / "0.png")
    with pytest.raises(ConfigError, match=r"trained on classes \['bright', 'dark'\] but"):
        load_run_dataset(cfg, run_dir)


def test_a_colour_folder_for_a_grey_space_names_the_spaces_that_fit(tiny_config, tmp_path):
    root = _folder(tmp_path / "rgb", mode="RGB", n=4)
    cfg = tiny_config(dataset=f"folder:{root}")
    splits = load_run_dataset(cfg)
    with pytest.raises(ConfigError, match=r"takes 1-channel input, dataset .* has 3 channel.*"
                                          r"--set space=NAME: .*ofa-mbv3"):  # fmt: skip
        build_supernet(cfg, splits)
