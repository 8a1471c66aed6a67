"""MNIST: reading the IDX files, finding or downloading them, and the one split every engine uses.

Every framework trains on exactly the arrays returned by :func:`prepare`, normalised by
:func:`normalize`; nothing else in the project decides which images go where.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import sys
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.spec import RunSpec

PROJECT_ROOT = Path(__file__).resolve().parent.parent

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# sha256 of the decompressed files.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049

# Normalisation shared by all engines and by prediction (MNIST training-set mean and std).
MEAN, STD = 0.1307, 0.3081


class MnistError(RuntimeError):
    """A data file is missing, malformed or cannot be fetched."""


@dataclass(frozen=True)
class Mnist:
    """The raw dataset: uint8 images (N, 28, 28) and uint8 labels (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True)
class Split:
    """What one run sees: train / validation from the 60k, test from the 10k (uint8)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


# --- reading IDX -------------------------------------------------------------------------
def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) and check its header against its size."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as err:  # zlib.error: damaged compressed data
        raise MnistError(f"{path}: cannot read ({err})") from err
    if len(raw) < 8:
        raise MnistError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise MnistError(f"{path}: wrong magic number {magic}, expected {expected_magic}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MnistError(f"{path}: truncated header")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if ndim == 3 and dims[1:] != [28, 28]:
        raise MnistError(f"{path}: images are {dims[1]}x{dims[2]}, expected 28x28")
    expected = int(np.prod(dims))
    body = len(raw) - header
    if body != expected:
        what = "truncated" if body < expected else "has trailing bytes"
        raise MnistError(f"{path}: {what}: header says {dims} ({expected} bytes), found {body}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _read_pair(directory: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``part`` ("train" or "test") images and labels, checked against each other."""
    image_path = _find(directory, FILES[f"{part}_images"])
    label_path = _find(directory, FILES[f"{part}_labels"])
    if image_path is None or label_path is None:
        raise MnistError(f"{directory}: the MNIST {part} files are missing")
    images = read_idx(image_path, IMAGE_MAGIC)
    labels = read_idx(label_path, LABEL_MAGIC)
    if labels.ndim != 1:
        raise MnistError(f"{label_path}: labels must be 1-D, got {labels.ndim}-D")
    if len(images) != len(labels):
        raise MnistError(
            f"{image_path.name} has {len(images)} images but {label_path.name} has "
            f"{len(labels)} labels"
        )
    if labels.max(initial=0) > 9:
        raise MnistError(f"{label_path}: label {labels.max()} is not a digit 0-9")
    return images, labels


# --- locating / downloading --------------------------------------------------------------
def mnist_dir() -> Path:
    """``MNIST_DIR`` if set, else ``data/mnist`` in the project."""
    env = os.environ.get("MNIST_DIR")
    return Path(env).expanduser() if env else PROJECT_ROOT / "data" / "mnist"


def missing_files(directory: Path) -> list[str]:
    return [stem for stem in FILES.values() if _find(directory, stem) is None]


def download(directory: Path, stems: list[str], mirrors: tuple[str, ...] | None = None) -> None:
    """Fetch missing files from the public mirrors, verifying each decompressed sha256.

    Folders made for the download are removed again if nothing could be fetched, so a
    mistyped ``MNIST_DIR`` leaves no trace.
    """
    made = [folder for folder in (directory, *directory.parents) if not folder.exists()]
    directory.mkdir(parents=True, exist_ok=True)
    try:
        _download_all(directory, stems, mirrors or MIRRORS)
    except MnistError:
        for folder in made:  # deepest first
            with contextlib.suppress(OSError):  # not empty: something was fetched
                folder.rmdir()
        raise


def _download_all(directory: Path, stems: list[str], mirrors: tuple[str, ...]) -> None:
    for stem in stems:
        errors = []
        for mirror in mirrors:
            try:
                _download_one(mirror + stem + ".gz", directory / f"{stem}.gz", SHA256[stem])
                break
            except (OSError, urllib.error.URLError, MnistError) as err:
                errors.append(f"{mirror}: {err}")
        else:
            raise MnistError(
                f"could not download {stem}.gz ({'; '.join(errors)}).\n"
                f"Without internet, put the four MNIST IDX files (.gz or raw) in {directory} "
                "or set MNIST_DIR to the folder that holds them."
            )


def _download_one(url: str, target: Path, sha256: str) -> None:
    from engines.store import atomic_write  # the store imports this module

    def fetch_and_check(tmp: str) -> None:
        with urllib.request.urlopen(url, timeout=30) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(1 << 16):
                out.write(chunk)
                done += len(chunk)
                _progress(target.name, done, total)
        sys.stderr.write("\n")
        try:
            digest = hashlib.sha256(gzip.decompress(Path(tmp).read_bytes())).hexdigest()
        except (OSError, EOFError, zlib.error) as err:
            raise MnistError(f"{url}: not a valid gzip file ({err})") from err
        if digest != sha256:
            raise MnistError(f"{url}: checksum mismatch ({digest} != {sha256})")

    atomic_write(target, fetch_and_check, suffix=".part")


def _progress(name: str, done: int, total: int) -> None:
    if total:
        filled = int(30 * done / total)
        bar = "#" * filled + "." * (30 - filled)
        sys.stderr.write(f"\r{name} [{bar}] {done / 1e6:5.1f}/{total / 1e6:.1f} MB")
    else:
        sys.stderr.write(f"\r{name} {done / 1e6:5.1f} MB")


# --- public entry points -----------------------------------------------------------------
def load_mnist(directory: Path | str | None = None, allow_download: bool = True) -> Mnist:
    """The full dataset as uint8 arrays, downloading it first if it is not on disk."""
    directory = Path(directory) if directory is not None else mnist_dir()
    missing = missing_files(directory)
    if missing:
        if not allow_download:
            raise MnistError(f"missing in {directory}: {', '.join(missing)} (.gz or raw)")
        download(directory, missing)
    x_train, y_train = _read_pair(directory, "train")
    x_test, y_test = _read_pair(directory, "test")
    return Mnist(x_train, y_train, x_test, y_test)


def split(
    mnist: Mnist,
    *,
    val_size: int = 5000,
    seed: int = 42,
    train_limit: int | None = None,
    test_limit: int | None = None,
) -> Split:
    """Seeded train/validation split of the training images; the test set is left whole.

    The permutation depends only on ``seed`` and the number of training images, so every
    framework gets exactly the same images in the same roles. ``train_limit`` keeps the first
    N training images of that split; ``test_limit`` the first N test images (quick runs only).
    """
    n = len(mnist.x_train)
    if val_size >= n:
        raise ValueError(f"val_size: {val_size} leaves no training images out of {n}")
    order = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = order[:val_size], order[val_size:]
    if train_limit is not None:
        train_idx = train_idx[:train_limit]
    test_end = len(mnist.x_test) if test_limit is None else test_limit
    return Split(
        x_train=mnist.x_train[train_idx],
        y_train=mnist.y_train[train_idx],
        x_val=mnist.x_train[val_idx],
        y_val=mnist.y_train[val_idx],
        x_test=mnist.x_test[:test_end],
        y_test=mnist.y_test[:test_end],
    )


def idx_sha256(array: np.ndarray) -> str:
    """The sha256 of the IDX file (decompressed) that ``array`` was read from."""
    magic = IMAGE_MAGIC if array.ndim == 3 else LABEL_MAGIC
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return hashlib.sha256(header + array.tobytes()).hexdigest()


def check_standard(mnist: Mnist, directory: Path) -> None:
    """Raise unless ``mnist`` is exactly the published MNIST.

    Runs are compared with each other (and with published results) on the promise that they
    saw the same images: swapped, cut or substitute files (Fashion-MNIST has the same shapes)
    would train without complaint and give numbers that compare with nothing.
    """
    arrays = {
        FILES["train_images"]: mnist.x_train,
        FILES["train_labels"]: mnist.y_train,
        FILES["test_images"]: mnist.x_test,
        FILES["test_labels"]: mnist.y_test,
    }
    differ = [stem for stem, array in arrays.items() if idx_sha256(array) != SHA256[stem]]
    if differ:
        raise MnistError(
            f"{directory}: not the published MNIST ({', '.join(differ)}: checksum differs; "
            f"{len(mnist.x_train)} training and {len(mnist.x_test)} test images found, MNIST "
            "has 60000 and 10000). Put the four standard MNIST IDX files there, or remove "
            "these to download them again (needs internet)."
        )


def prepare(spec: RunSpec) -> Split:
    """The split a spec asks for, from the standard dataset on disk (or downloaded)."""
    mnist = load_mnist()
    check_standard(mnist, mnist_dir())
    return split(
        mnist,
        val_size=spec.val_size,
        seed=spec.seed,
        train_limit=spec.train_limit,
        test_limit=spec.test_limit,
    )


def standardize(images: np.ndarray) -> np.ndarray:
    """The formula behind :func:`normalize`, for any pixel array in 0..255."""
    return ((images.astype(np.float32) / 255.0) - MEAN) / STD


# standardize() of every possible uint8 pixel: looking values up is ~3x faster than the
# arithmetic over 55,000 images (it runs every augmented epoch) and gives the same floats.
NORMALIZED_UINT8 = standardize(np.arange(256, dtype=np.uint8))


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28), standardised with the MNIST mean/std."""
    if images.dtype == np.uint8:
        return NORMALIZED_UINT8[images]
    return standardize(images)
