"""Light training-time augmentation, shared by every engine.

Each epoch every training image is rotated by a random whole number of degrees (at most
``augment_rotate`` either way) and scaled by a random whole percent (at most
``augment_zoom`` either way), both about the image centre, and then moved by a random
whole-pixel offset (at most ``augment_shift`` pixels along each axis); what leaves the frame
is dropped and the uncovered border is background. The draws come from ``(seed, epoch)``,
so all three frameworks see exactly the same augmented images in every epoch. Validation
and test images are never augmented.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

import numpy as np

from engines.spec import RunSpec


def shift_images(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, H, W) -> a copy with each image shifted by up to ``max_shift`` px per axis."""
    if max_shift <= 0:
        return images
    n, height, width = images.shape
    pad = max_shift
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
    # Top-left corner of each image's crop inside the padded frame: pad +- max_shift.
    top = rng.integers(0, 2 * pad + 1, size=n)
    left = rng.integers(0, 2 * pad + 1, size=n)
    # One slice per offset (at most 17 x 17 of them) instead of a per-pixel gather: ~8x
    # faster at max_shift 1, which matters next to a one-second DNN epoch.
    shifted = np.empty_like(images)
    for row in range(2 * pad + 1):
        for col in range(2 * pad + 1):
            picked = np.flatnonzero((top == row) & (left == col))
            shifted[picked] = padded[picked, row : row + height, col : col + width]
    return shifted


@functools.lru_cache(maxsize=32)
def warp_matrix(degrees: int, zoom: int, height: int, width: int) -> np.ndarray:
    """``(H*W, H*W)`` float32 ``M`` with ``warped.ravel() == image.ravel() @ M``: a turn by
    ``degrees`` and a scaling by ``1 + zoom / 100``, both about the image centre.

    Bilinear interpolation; source pixels outside the frame count as background. Warping a
    whole batch is then one matrix product per (angle, zoom) pair. The cache holds every
    matrix of a rotation-only run at up to +-15 degrees; with zoom on there are too many pairs
    to keep (441 at +-10 % and +-10 degrees, 2.4 MB each), so each is rebuilt when used
    (~1.4 ms, about as long as the product with it takes).
    """
    theta = np.deg2rad(degrees)
    scale = 1 + zoom / 100
    rows, cols = np.mgrid[0:height, 0:width]
    y = rows.ravel() - (height - 1) / 2
    x = cols.ravel() - (width - 1) / 2
    # Where each output pixel's value comes from (the inverse of the turn and the scaling).
    source_y = (np.cos(theta) * y - np.sin(theta) * x) / scale + (height - 1) / 2
    source_x = (np.sin(theta) * y + np.cos(theta) * x) / scale + (width - 1) / 2
    y0, x0 = np.floor(source_y).astype(int), np.floor(source_x).astype(int)
    fy, fx = source_y - y0, source_x - x0
    matrix = np.zeros((height * width, height * width), dtype=np.float32)
    target = np.arange(height * width)
    corners = [
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ]
    for dy, dx, weight in corners:
        sy, sx = y0 + dy, x0 + dx
        inside = (sy >= 0) & (sy < height) & (sx >= 0) & (sx < width)
        np.add.at(matrix, (sy[inside] * width + sx[inside], target[inside]), weight[inside])
    return matrix


def warp_images(
    images: np.ndarray, max_degrees: int, max_zoom: int, rng: np.random.Generator
) -> np.ndarray:
    """uint8 (N, H, W) -> a copy with each image turned by a whole number of degrees drawn
    uniformly from ``[-max_degrees, max_degrees]`` and scaled by ``1 + z / 100`` with a whole
    ``z`` drawn uniformly from ``[-max_zoom, max_zoom]``."""
    if max_degrees <= 0 and max_zoom <= 0:
        return images
    n, height, width = images.shape
    # Angles first and zooms only when asked for: a rotation-only run draws what it drew
    # before zoom existed, so its seeds reproduce it.
    angles = rng.integers(-max_degrees, max_degrees + 1, size=n) if max_degrees > 0 else 0
    zooms = rng.integers(-max_zoom, max_zoom + 1, size=n) if max_zoom > 0 else 0
    pairs = np.zeros((n, 2), dtype=np.int64)
    pairs[:, 0], pairs[:, 1] = angles, zooms
    flat = images.reshape(n, height * width)
    warped = flat.copy()
    # Whole degrees and percents keep this to one matrix product per distinct pair
    # (0.5-1.3 s for 55,000 images at +-10 degrees on the hosts measured so far, ~1.8-2.7 s
    # with +-10 % zoom as well; a per-pixel gather took ~1.5 s where the products took 0.5 s).
    unique_pairs, which = np.unique(pairs, axis=0, return_inverse=True)
    for index, (angle, zoom) in enumerate(unique_pairs):
        if angle == 0 and zoom == 0:
            continue
        picked = np.flatnonzero(which == index)
        matrix = warp_matrix(int(angle), int(zoom), height, width)
        values = flat[picked].astype(np.float32) @ matrix
        warped[picked] = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return warped.reshape(images.shape)


def epoch_images(images: np.ndarray, spec: RunSpec, epoch: int) -> np.ndarray:
    """The training images for ``epoch`` (1-based): warped and shifted as ``spec`` asks,
    with draws from ``(spec.seed, epoch)``; ``images`` itself when augmentation is off."""
    rng = np.random.default_rng([spec.seed, epoch])
    warped = warp_images(images, spec.augment_rotate, spec.augment_zoom, rng)
    return shift_images(warped, spec.augment_shift, rng)


T = TypeVar("T")


class BuiltAhead(Generic[T]):
    """``build(epoch)`` for epochs 1, 2, 3, ..., each one started on a worker thread while
    the epoch before it trains, so that training does not wait for its images.

    Building an augmented epoch takes 0.1-1.3 s (NumPy, which lets go of the GIL); built
    ahead, it no longer delays the epoch's start, and a batch-32 Keras DNN epoch takes ~18 %
    less time. The PyTorch engines do not use it: their OpenMP threads slow down as soon as
    another thread takes a core, and their batch-32 DNN epochs got slower, not faster
    (BENCHMARKS.md). One worker builds the epochs in order, so a ``build`` that draws from a
    stateful generator draws in the same sequence as without the worker.
    """

    def __init__(self, build: Callable[[int], T], last_epoch: int) -> None:
        self._build = build
        self._last_epoch = last_epoch
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="epoch-ahead")
        self._pending: tuple[int, Future[T]] | None = None

    def __call__(self, epoch: int) -> T:
        if self._pending is not None and self._pending[0] == epoch:
            built = self._pending[1].result()
        else:
            if self._pending is not None:
                self._pending[1].result()  # never two builds at once
            built = self._build(epoch)
        self._pending = None
        if epoch < self._last_epoch:
            self._pending = (epoch + 1, self._worker.submit(self._build, epoch + 1))
        return built
