"""Training-time shifts, rotations and zooms: what they do to an image, that they are
reproducible per (seed, epoch), and that every engine trains on them when a spec asks."""

from __future__ import annotations

import numpy as np
import pytest

from engines.augment import BuiltAhead, epoch_images, shift_images, warp_images
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


def augmenting(shift: int, rotate: int = 0, seed: int = 7, zoom: int = 0) -> RunSpec:
    return RunSpec(
        framework="torch",
        arch="cnn",
        augment_shift=shift,
        augment_rotate=rotate,
        augment_zoom=zoom,
        seed=seed,
    )


class FixedDraws:
    """Stands in for the random generator: every image gets the same angle, then zoom."""

    def __init__(self, *values: int) -> None:
        self.values = list(values)

    def integers(self, low: int, high: int, size: int) -> np.ndarray:
        return np.full(size, self.values.pop(0))


def test_a_quarter_turn_moves_every_pixel_exactly_and_zero_degrees_changes_nothing() -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)

    turned = warp_images(images, 90, 0, FixedDraws(90))
    assert all(np.array_equal(t, np.rot90(i, -1)) for t, i in zip(turned, images, strict=True))
    assert np.array_equal(warp_images(images, 10, 10, FixedDraws(0, 0)), images)
    assert warp_images(images, 0, 0, np.random.default_rng(0)) is images


def test_a_zoom_scales_about_the_centre() -> None:
    """-50 % halves every distance from the centre: a dot 2 px off it lands 1 px off it."""
    images = np.stack([dot_at(6, 2)])  # centre (4, 4): 2 px down, 2 px left

    shrunk = warp_images(images, 0, 50, FixedDraws(-50))
    assert np.array_equal(shrunk[0], dot_at(5, 3))
    grown = warp_images(np.stack([dot_at(5, 3)]), 0, 100, FixedDraws(100))
    assert grown[0, 6, 2] == 200  # and +100 % doubles it (with bilinear blur around it)


def test_rotations_stay_within_max_degrees_and_keep_a_centred_digit_in_frame() -> None:
    digit = load_mnist(allow_download=False).x_train[:1]
    images = np.repeat(digit, 400, axis=0)
    rotated = warp_images(images, 10, 0, np.random.default_rng(3))

    assert rotated.shape == images.shape and rotated.dtype == np.uint8
    # The ink's centre of mass turns about the frame's centre by at most 10 degrees.
    rows, cols = np.mgrid[0:28, 0:28] - 13.5

    def angle_of(image: np.ndarray) -> float:
        weight = image.astype(float)
        return np.degrees(np.arctan2((rows * weight).sum(), (cols * weight).sum()))

    turned_by = np.array([angle_of(r) - angle_of(digit[0]) for r in rotated])
    turned_by = (turned_by + 180) % 360 - 180
    assert np.abs(turned_by).max() <= 10.5
    assert np.abs(turned_by).max() > 7  # the range is used, not just small angles
    # Interpolation blurs a little but keeps the amount of ink (nothing leaves the frame).
    ink = rotated.sum(axis=(1, 2)) / digit.sum()
    assert ink.min() > 0.9 and ink.max() < 1.1


def test_zooms_stay_within_max_zoom_and_use_its_range() -> None:
    digit = load_mnist(allow_download=False).x_train[:1]
    images = np.repeat(digit, 400, axis=0)
    zoomed = warp_images(images, 0, 10, np.random.default_rng(3))

    # The ink's spread about the frame's centre grows or shrinks with the scale.
    rows, cols = np.mgrid[0:28, 0:28] - 13.5

    def spread(image: np.ndarray) -> float:
        weight = image.astype(float) / image.sum()
        return float(np.sqrt((weight * (rows**2 + cols**2)).sum()))

    scale = np.array([spread(z) for z in zoomed]) / spread(digit[0])
    assert scale.min() > 0.88 and scale.max() < 1.12
    assert scale.min() < 0.94 and scale.max() > 1.06  # the range is used both ways


def test_rotation_only_draws_only_the_angles() -> None:
    """Zoom off, the generator is left where the angles alone leave it, so a rotation-only
    run's later draws (its shifts) are the ones it made before zoom existed."""
    images = load_mnist(allow_download=False).x_train[:64]
    used, fresh = np.random.default_rng(5), np.random.default_rng(5)
    warp_images(images, 10, 0, used)
    fresh.integers(-10, 11, size=64)
    assert used.integers(0, 2**31) == fresh.integers(0, 2**31)


def test_epoch_images_are_the_same_for_the_same_seed_and_epoch_and_differ_otherwise() -> None:
    images = load_mnist(allow_download=False).x_train[:256]

    first = epoch_images(images, augmenting(2, rotate=10), epoch=1)
    assert np.array_equal(first, epoch_images(images, augmenting(2, rotate=10), epoch=1))
    assert not np.array_equal(first, epoch_images(images, augmenting(2, rotate=10), epoch=2))
    assert not np.array_equal(first, epoch_images(images, augmenting(2, 10, seed=8), epoch=1))
    assert not np.array_equal(first, epoch_images(images, augmenting(2), epoch=1))
    assert not np.array_equal(first, epoch_images(images, augmenting(2, 10, zoom=5), epoch=1))
    assert not np.array_equal(first, images)
    # Shifting never changes how much ink a digit has by more than what leaves the frame.
    assert np.abs(first.sum(axis=(1, 2)) - images.sum(axis=(1, 2)).astype(np.int64)).max() < (
        images.sum(axis=(1, 2)).min()
    )


def test_no_augmentation_returns_the_images_untouched() -> None:
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    assert epoch_images(images, augmenting(0), epoch=3) is images


def test_adding_rotation_leaves_a_shift_only_run_reproducible() -> None:
    """A spec without rotation draws the same shifts as before rotation existed."""
    images = load_mnist(allow_download=False).x_train[:256]
    expected = shift_images(images, 2, np.random.default_rng([7, 4]))
    assert np.array_equal(epoch_images(images, augmenting(2), epoch=4), expected)


@pytest.mark.parametrize("augmentation", [{"augment_shift": 3}, {"augment_rotate": 20}])
@pytest.mark.parametrize("framework", ["keras", "torch", "lightning"])
def test_engines_train_on_augmented_images_when_the_spec_asks(
    framework: str, augmentation: dict[str, int]
) -> None:
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
        augment_rotate=0,
    )
    data = split(mnist, val_size=500, seed=base.seed, train_limit=600, test_limit=200)
    engine = import_engine(framework)

    plain = engine.train(base, data)
    augmented = engine.train(base.replace(**augmentation), data)

    # Same seed and images: only the augmentation can make the training curve differ.
    plain_loss = [s.train_loss for s in plain.history]
    augmented_loss = [s.train_loss for s in augmented.history]
    assert plain_loss != pytest.approx(augmented_loss, rel=1e-3)
    # Harder training images: a higher training loss by the last epoch, yet it still learns.
    assert augmented_loss[-1] > plain_loss[-1]
    assert augmented.history[-1].val_accuracy > 0.6


@pytest.mark.parametrize(("arch", "augment_shift"), [("dnn", 0), ("dnn", 1), ("cnn", 1)])
def test_keras_takes_each_epochs_batches_from_that_epoch_only(
    arch: str, augment_shift: int
) -> None:
    """Each Keras epoch is exactly its own batches: none borrowed from the next epoch's
    images, none missing at the end, whatever the training steps per graph call
    (``STEPS_PER_EXECUTION`` differs between the architectures)."""
    spec = RunSpec(
        framework="keras",
        arch=arch,
        epochs=3,
        train_limit=600,
        val_size=500,
        test_limit=200,
        batch_size=32,
        es_patience=10,
        augment_shift=augment_shift,
        augment_rotate=0,
    )
    data = split(load_mnist(allow_download=False), val_size=500, seed=42, train_limit=600)
    result = import_engine("keras").train(spec, data)

    batches_per_epoch = -(-600 // 32)  # 19, the last one partial
    assert int(result.model.optimizer.iterations) == 3 * batches_per_epoch
    assert all(stats.train_loss > 0 for stats in result.history)


def test_keras_builds_the_next_epochs_images_while_this_epoch_trains(monkeypatch) -> None:
    """Training never waits for an epoch's augmented images: by the time the first batch
    of an epoch is handed out, the next epoch's images are being built (or are ready)."""
    import threading

    import_engine("keras")
    from engines import keras_engine

    built: list[int] = []
    second_epoch_built = threading.Event()

    def recording_epoch_images(images, spec, epoch):
        built.append(epoch)
        if epoch == 2:
            second_epoch_built.set()
        return epoch_images(images, spec, epoch)

    monkeypatch.setattr(keras_engine, "epoch_images", recording_epoch_images)
    spec = RunSpec(framework="keras", arch="dnn", train_limit=256, batch_size=64, epochs=3)
    images = load_mnist(allow_download=False).x_train[:256]
    labels = np.arange(256) % 10
    one_epoch = keras_engine.epoch_batches(spec, images, labels, n_epochs=1)

    first_batch = next(iter(one_epoch))

    assert len(first_batch[0]) == 64
    assert second_epoch_built.wait(timeout=30), f"epochs built so far: {built}"
    assert built == [1, 2]


def test_built_ahead_hands_each_epoch_its_own_build_and_builds_the_next_one_early() -> None:
    import threading

    started: list[int] = []
    release = threading.Event()

    def build(epoch: int) -> str:
        started.append(epoch)
        if epoch == 3:
            release.wait(timeout=30)
        return f"epoch {epoch}"

    ahead = BuiltAhead(build, last_epoch=3)
    assert ahead(1) == "epoch 1"
    assert ahead(2) == "epoch 2"  # built while "epoch 1" trained
    # Epoch 3 is already being built: nothing is started twice, nothing past the last epoch.
    release.set()
    assert ahead(3) == "epoch 3"
    assert started == [1, 2, 3]
    # Asked out of turn (a restarted loop), it still hands over the epoch asked for.
    assert ahead(1) == "epoch 1"
