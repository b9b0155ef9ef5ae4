"""Target datasets: digits upsampled with a fixed split; image folders and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from supernet.data import load_digits, resize
from supernet.errors import ConfigError, DataNotFoundError
from supernet.transfer.targets import load_target

SOURCE = {"mean": (0.25,), "std": (0.4,)}


@pytest.fixture(scope="module")
def digits():
    return load_target("digits", input_size=28, input_channels=1, **SOURCE)


def _rows(images: torch.Tensor) -> set[bytes]:
    return {bytes(row) for row in images.reshape(images.shape[0], -1).numpy()}


def test_digits_are_upsampled_with_a_fixed_disjoint_split(digits):
    s = digits.splits
    assert s.train.images.shape[1:] == (1, 28, 28)
    assert (len(s.train), len(s.val), len(s.test)) == (1257, 270, 270)
    assert digits.num_classes == 10 and digits.class_names == tuple("0123456789")
    train, val, test = _rows(s.train.images), _rows(s.val.images), _rows(s.test.images)
    assert len(train) + len(val) + len(test) == 1797  # every image once (digits has no duplicates)
    assert not (train & val or train & test or val & test)
    again = load_target("digits", input_size=28, input_channels=1, **SOURCE).splits
    assert torch.equal(again.test.images, s.test.images)
    assert torch.equal(again.train.labels, s.train.labels)


def test_digits_are_the_8x8_images_resized_bilinearly(digits):
    native = load_digits(seed=0).test
    assert torch.equal(digits.splits.test.images, resize(native.images, 28))
    assert torch.equal(digits.splits.test.labels, native.labels)


def test_targets_are_normalized_like_the_source(digits):
    for split in (digits.splits.train, digits.splits.val, digits.splits.test):
        assert (split.mean, split.std) == ((0.25,), (0.4,))


def test_digits_need_a_one_channel_supernet():
    with pytest.raises(ConfigError, match="1-channel images but the supernet takes 3-channel"):
        load_target("digits", input_size=28, input_channels=3, mean=(0, 0, 0), std=(1, 1, 1))


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"target = 'cifar' is not known; choose from digits, "
                       r"folder:PATH"):  # fmt: skip
        load_target("cifar", input_size=28, input_channels=1, **SOURCE)


def _write_folder(root, classes: dict[str, int], mode: str = "L", size: int = 10) -> None:
    rng = np.random.default_rng(0)
    for c, (name, n) in enumerate(classes.items()):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(n):
            shape = (size, size) if mode == "L" else (size, size, 3)
            pixels = rng.integers(0, 100, shape) + 120 * c
            Image.fromarray(pixels.astype(np.uint8), mode).save(folder / f"{i}.png")


def test_image_folder_is_read_split_and_resized(tmp_path):
    _write_folder(tmp_path, {"cat": 8, "dog": 6})
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    target = load_target(f"folder:{tmp_path}", input_size=16, input_channels=1, **SOURCE)
    s = target.splits
    assert target.class_names == ("cat", "dog") and target.num_classes == 2
    assert s.train.images.shape[1:] == (1, 16, 16)
    assert len(s.train) + len(s.val) + len(s.test) == 14
    for split in (s.train, s.val, s.test):  # stratified: every class in every split
        assert set(split.labels.tolist()) == {0, 1}
    assert target.short_name == tmp_path.name
    # class 1 was drawn brighter
    assert s.train.images[s.train.labels == 1].float().mean() > 100


def test_wrong_channel_count_names_both(tmp_path):
    _write_folder(tmp_path, {"a": 3, "b": 3}, mode="RGB")
    with pytest.raises(ConfigError) as err:
        load_target(f"folder:{tmp_path}", input_size=8, input_channels=1, **SOURCE)
    message = str(err.value)
    assert "has 3-channel images but the supernet takes 1-channel images" in message
    assert "--convert-channels" in message
    converted = load_target(f"folder:{tmp_path}", input_size=8, input_channels=1,
                            convert_channels=True, **SOURCE)  # fmt: skip
    assert converted.splits.train.images.shape[1] == 1


def test_mixed_channel_counts_are_refused(tmp_path):
    _write_folder(tmp_path, {"a": 3}, mode="RGB")
    _write_folder(tmp_path, {"b": 3}, mode="L")
    with pytest.raises(ConfigError, match="has 1 channel"):
        load_target(f"folder:{tmp_path}", input_size=8, input_channels=1, **SOURCE)


def test_empty_class_folder_is_named(tmp_path):
    _write_folder(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"class folder '.*empty' holds no images"):
        load_target(f"folder:{tmp_path}", input_size=8, input_channels=1, **SOURCE)


def test_one_class_is_not_enough(tmp_path):
    _write_folder(tmp_path, {"only": 3})
    with pytest.raises(ConfigError, match="holds 1 class folder"):
        load_target(f"folder:{tmp_path}", input_size=8, input_channels=1, **SOURCE)


def test_missing_folder(tmp_path):
    with pytest.raises(DataNotFoundError, match="is not a directory"):
        load_target(f"folder:{tmp_path / 'nope'}", input_size=8, input_channels=1, **SOURCE)


def test_unreadable_image_is_skipped_and_named(tmp_path, caplog):
    _write_folder(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "b" / "broken.png").write_bytes(b"not a png")
    target = load_target(f"folder:{tmp_path}", input_size=8, input_channels=1, **SOURCE)
    s = target.splits
    assert len(s.train) + len(s.val) + len(s.test) == 6
    assert s.skipped == (str(tmp_path / "b" / "broken.png"),)
    assert "broken.png' cannot be read" in caplog.text
