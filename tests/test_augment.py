"""Training-time shifts: what they do to an image, that they are reproducible per
(seed, epoch), and that every engine trains on them when a spec asks for them."""

from __future__ import annotations

import numpy as np
import pytest

from engines.augment import epoch_images, shift_images
from engines.core import import_engine
from engines.data import load_mnist, split
from engines.spec import RunSpec


def dot_at(row: int, col: int, size: int = 9) -> np.ndarray:
    image = np.zeros((size, size), dtype=np.uint8)
    image[row, col] = 200
    return image


def test_each_image_moves_by_at_most_max_shift_and_keeps_its_pixels() -> None:
    images = np.stack([dot_at(4, 4)] * 500)
    shifted = shift_images(images, 2, np.random.default_rng(0))

    assert shifted.shape == images.shape and shifted.dtype == np.uint8
    image_index, rows, cols = np.argwhere(shifted == 200).T
    assert list(image_index) == list(range(500))  # every dot survived, exactly once
    assert set(rows - 4) == set(cols - 4) == {-2, -1, 0, 1, 2}  # all offsets occur, no larger


def test_pixels_shifted_off_the_edge_are_dropped_and_the_border_is_background() -> None:
    images = np.stack([dot_at(0, 0)] * 200)
    shifted = shift_images(images, 1, np.random.default_rng(1))

    survivors = (shifted == 200).reshape(200, -1).sum(axis=1)
    assert set(survivors) == {0, 1}
    assert set(np.unique(shifted)) <= {0, 200}


def test_epoch_images_are_the_same_for_the_same_seed_and_epoch_and_differ_otherwise() -> None:
    images = load_mnist(allow_download=False).x_train[:256]

    first = epoch_images(images, 2, seed=7, epoch=1)
    assert np.array_equal(first, epoch_images(images, 2, seed=7, epoch=1))
    assert not np.array_equal(first, epoch_images(images, 2, seed=7, epoch=2))
    assert not np.array_equal(first, epoch_images(images, 2, seed=8, epoch=1))
    assert not np.array_equal(first, images)
    # Shifting never changes how much ink a digit has by more than what leaves the frame.
    assert np.abs(first.sum(axis=(1, 2)) - images.sum(axis=(1, 2)).astype(np.int64)).max() < (
        images.sum(axis=(1, 2)).min()
    )


def test_zero_shift_returns_the_images_untouched() -> None:
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    assert epoch_images(images, 0, seed=1, epoch=3) is images


@pytest.mark.parametrize("framework", ["keras", "torch", "lightning"])
def test_engines_train_on_shifted_images_when_the_spec_asks(framework: str) -> None:
    mnist = load_mnist(allow_download=False)
    base = RunSpec(
        framework=framework,
        arch="dnn",
        epochs=3,
        train_limit=600,
        val_size=500,
        test_limit=200,
        batch_size=32,
        lr=3e-3,
        es_patience=10,
        augment_shift=0,
    )
    data = split(mnist, val_size=500, seed=base.seed, train_limit=600, test_limit=200)
    engine = import_engine(framework)

    plain = engine.train(base, data)
    shifted = engine.train(base.replace(augment_shift=3), data)

    # Same seed and images: only the shifts can make the training curve differ.
    plain_loss = [s.train_loss for s in plain.history]
    shifted_loss = [s.train_loss for s in shifted.history]
    assert plain_loss != pytest.approx(shifted_loss, rel=1e-3)
    # Harder training images: a higher training loss by the last epoch, yet it still learns.
    assert shifted_loss[-1] > plain_loss[-1]
    assert shifted.history[-1].val_accuracy > 0.6
