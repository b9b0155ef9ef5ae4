"""Image folders: layouts, formats, stratified splits, unreadable files, bad input messages."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from supernet.data import (
    BatchLoader,
    index_image_folder,
    load_dataset,
    load_image_folder,
    random_resized_crop,
    read_image,
)
from supernet.data.stream import FolderStream, StreamLoader, stream_channel_stats
from supernet.errors import ConfigError, DataNotFoundError


def write_images(folder, n, *, mode="L", size=(12, 12), fmt="png", value=0, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    for i in range(n):
        pixels = (rng.integers(0, 60, shape) + value).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels, mode).save(folder / f"{i:03d}.{fmt}")


def counts(split, classes):
    return [int((split.labels == c).sum()) for c in range(classes)]


def test_stratified_split_counts_are_exact_per_class(tmp_path):
    write_images(tmp_path / "a", 10)
    write_images(tmp_path / "b", 7, value=100)
    s = load_image_folder(tmp_path, size=8, val_fraction=0.2, test_fraction=0.2, seed=3)
    # a: round(2.0) test, round(2.0) val, 6 train; b: round(1.4) = 1 each, 5 train
    assert counts(s.train, 2) == [6, 5]
    assert counts(s.val, 2) == [2, 1]
    assert counts(s.test, 2) == [2, 1]
    again = load_image_folder(tmp_path, size=8, val_fraction=0.2, test_fraction=0.2, seed=3)
    assert torch.equal(again.test.images, s.test.images)  # seeded
    other = load_image_folder(tmp_path, size=8, val_fraction=0.2, test_fraction=0.2, seed=4)
    assert not torch.equal(other.test.images, s.test.images)


def test_corrupt_image_is_skipped_with_a_warning_naming_it(tmp_path, caplog):
    write_images(tmp_path / "a", 5)
    write_images(tmp_path / "b", 5, value=150)
    (tmp_path / "b" / "zz-corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with caplog.at_level(logging.WARNING):
        s = load_image_folder(tmp_path, size=8, seed=0)
    assert s.skipped == (str(tmp_path / "b" / "zz-corrupt.png"),)
    assert "zz-corrupt.png" in caplog.text and "1 unreadable image(s) skipped" in caplog.text
    assert len(s.train) + len(s.val) + len(s.test) == 10
    # class b was drawn brighter: labels still match the images
    assert s.train.images[s.train.labels == 1].float().mean() > 140


def test_jpeg_webp_and_grey_or_rgb_channel_counts(tmp_path):
    write_images(tmp_path / "rgb" / "a", 4, mode="RGB", fmt="jpg")
    write_images(tmp_path / "rgb" / "b", 4, mode="RGB", fmt="webp", value=120)
    s = load_image_folder(tmp_path / "rgb", size=10)
    assert s.input_channels == 3 and s.train.images.shape[1:] == (3, 10, 10)
    assert len(s.train.mean) == 3
    write_images(tmp_path / "grey" / "a", 4, fmt="png")
    write_images(tmp_path / "grey" / "b", 4, fmt="jpeg")
    assert load_image_folder(tmp_path / "grey", size=10).input_channels == 1
    # WebP has no grey mode: Pillow decodes a grey WebP as RGB; channels=1 converts it back
    write_images(tmp_path / "grey" / "b", 2, fmt="webp")
    with pytest.raises(ConfigError, match="pass channels=1 or 3"):
        load_image_folder(tmp_path / "grey", size=10)
    assert load_image_folder(tmp_path / "grey", size=10, channels=1).input_channels == 1


def test_split_subtrees_are_used_and_a_missing_split_is_carved_from_train(tmp_path):
    for cls, value in (("cat", 0), ("dog", 150)):
        write_images(tmp_path / "train" / cls, 10, value=value)
        write_images(tmp_path / "val" / cls, 3, value=value)
    index = index_image_folder(tmp_path, test_fraction=0.2, val_fraction=0.5, seed=0)
    assert index.layout == "split-folders" and index.classes == ("cat", "dog")
    assert [p.parent.parent.name for p, _ in index.splits["val"]] == ["val"] * 6
    assert len(index.splits["test"]) == 4 and len(index.splits["train"]) == 16
    assert all(p.parent.parent.name == "train" for p, _ in index.splits["test"])
    s = load_image_folder(tmp_path, size=8, test_fraction=0.2)
    assert counts(s.val, 2) == [3, 3] and counts(s.test, 2) == [2, 2]


def test_a_val_class_unknown_to_train_is_named(tmp_path):
    write_images(tmp_path / "train" / "a", 3)
    write_images(tmp_path / "train" / "b", 3)
    write_images(tmp_path / "val" / "c", 3)
    with pytest.raises(ConfigError, match=r"'.*val/c' has no counterpart in '.*train'"):
        index_image_folder(tmp_path)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda r: write_images(r / "only", 3), r"holds 1 class folder\(s\); need at least 2"),
        (
            lambda r: (write_images(r / "a", 3), (r / "empty").mkdir()),
            r"class folder '.*empty' holds no images",
        ),
        (
            lambda r: (write_images(r / "a", 3), (r / "b").mkdir(), (r / "b" / "x.txt").touch()),
            r"class folder '.*b' holds no images",
        ),
        (
            lambda r: (write_images(r / "a", 3), write_images(r / "b", 3, mode="RGB")),
            r"image '.*' has 3 channel\(s\) but '.*' has 1",
        ),
    ],
    ids=["one-class", "empty-class", "only-non-image-files", "mixed-channels"],
)
def test_bad_folders_are_named(tmp_path, build, message):
    build(tmp_path)
    with pytest.raises(ConfigError, match=message):
        load_image_folder(tmp_path, size=8)


def test_missing_folder_and_non_image_files(tmp_path, caplog):
    with pytest.raises(DataNotFoundError, match="is not a directory"):
        load_image_folder(tmp_path / "nope", size=8)
    write_images(tmp_path / "a", 3)
    write_images(tmp_path / "b", 3)
    (tmp_path / "a" / "notes.txt").write_text("hello")
    with caplog.at_level(logging.WARNING):
        s = load_image_folder(tmp_path, size=8)
    assert "notes.txt: not an image file" in caplog.text
    assert len(s.train) + len(s.val) + len(s.test) == 6


def test_every_train_image_unreadable_is_an_error_naming_the_class(tmp_path):
    write_images(tmp_path / "a", 3)
    (tmp_path / "b").mkdir()
    for i in range(3):
        (tmp_path / "b" / f"{i}.jpg").write_bytes(b"no jpeg")
    with pytest.raises(ConfigError, match=r"class 'b' of .* has no readable train image"):
        load_image_folder(tmp_path, size=8, val_fraction=0.0, test_fraction=0.0)


def test_imagenet_recipe_keeps_the_aspect_ratio_and_centre_crops(tmp_path):
    # 60 x 20: 10 black columns, 40 grey, 10 white
    pixels = np.full((20, 60), 128, np.uint8)
    pixels[:, :10], pixels[:, 50:] = 0, 255
    Image.fromarray(pixels, "L").save(tmp_path / "wide.png")
    train = read_image(tmp_path / "wide.png", 10, None, recipe="imagenet", train=True)
    assert train.shape == (1, 10, 10) and set(np.unique(train)) == {128}  # the centre square
    evaluated = read_image(tmp_path / "wide.png", 14, None, recipe="imagenet", train=False)
    assert evaluated.shape == (1, 14, 14) and set(np.unique(evaluated)) == {128}
    stretched = read_image(tmp_path / "wide.png", 10, None)
    assert stretched.min() == 0 and stretched.max() == 255  # the whole image, squeezed


def test_random_resized_crop_is_seeded_and_the_identity_at_full_scale():
    x = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    same = random_resized_crop(x, torch.Generator().manual_seed(0), scale=(1, 1), ratio=(1, 1))
    assert torch.equal(same, x)
    a = random_resized_crop(x, torch.Generator().manual_seed(1))
    b = random_resized_crop(x, torch.Generator().manual_seed(1))
    c = random_resized_crop(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    # quarter-area square crops of a left-black / right-white image: black, white or both
    halves = torch.zeros(64, 1, 16, 16, dtype=torch.uint8)
    halves[..., 8:] = 255
    crops = random_resized_crop(halves, torch.Generator().manual_seed(0), scale=(0.25, 0.25),
                                ratio=(1, 1)).float()  # fmt: skip
    means = crops.mean(dim=(1, 2, 3))  # the box edge blends one column bilinearly
    assert (means < 10).any() and (means > 245).any() and ((means > 20) & (means < 235)).any()
    with pytest.raises(ConfigError, match="scale"):
        random_resized_crop(x, torch.Generator(), scale=(0.5, 0.1))


def test_augmented_folder_batches_use_the_resized_crop(tmp_path):
    write_images(tmp_path / "a", 6, size=(16, 16))
    write_images(tmp_path / "b", 6, size=(16, 16), value=150)
    s = load_dataset(f"folder:{tmp_path}", size=16, recipe="imagenet", augment=True)
    assert s.train.augmentation == "resized-crop-flip"
    plain = BatchLoader(s.train, 4, shuffle=False, augment=False)
    augmented = BatchLoader(s.train, 4, shuffle=False, augment=True)
    assert not torch.equal(next(iter(plain))[0], next(iter(augmented))[0])
    with pytest.raises(ConfigError, match="got bad options"):
        load_dataset(f"folder:{tmp_path}", sise=16)


@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_skips_corrupt_files_and_matches_the_in_memory_statistics(tmp_path, workers):
    write_images(tmp_path / "a", 7, mode="RGB")
    write_images(tmp_path / "b", 6, mode="RGB", value=100)
    (tmp_path / "a" / "bad.png").write_bytes(b"garbage")
    in_memory = load_image_folder(tmp_path, size=8, val_fraction=0, test_fraction=0)
    items = index_image_folder(tmp_path, val_fraction=0, test_fraction=0).splits["train"]
    stream = FolderStream(items, size=8, channels=3, recipe="stretch")
    loader = StreamLoader(stream, 4, mean=(0.5,) * 3, std=(0.25,) * 3, shuffle=True,
                          augment=False, workers=workers)  # fmt: skip
    mean, std = stream_channel_stats(loader)
    np.testing.assert_allclose(mean, in_memory.train.mean, rtol=1e-12)
    np.testing.assert_allclose(std, in_memory.train.std, rtol=1e-12)
    assert loader.skipped == [str(tmp_path / "a" / "bad.png")]
    labels = torch.cat([y for _, y in loader])
    assert sorted(labels.tolist()) == [0] * 7 + [1] * 6
    x, _ = next(iter(loader))
    assert x.dtype == torch.float32 and x.shape[1:] == (3, 8, 8)
