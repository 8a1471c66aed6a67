"""The MNIST loader rejects bad files clearly, and the split is the same for everyone."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from engines import data
from engines.data import IMAGE_MAGIC, LABEL_MAGIC, MnistError
from engines.spec import RunSpec


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fake_mnist(folder: Path, n_train: int = 30, n_test: int = 10, gz: bool = True) -> None:
    """Four small but well-formed IDX files with the standard names."""
    rng = np.random.default_rng(0)
    parts = {
        "train-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (n_train, 28, 28)), IMAGE_MAGIC),
        "train-labels-idx1-ubyte": idx_bytes(np.arange(n_train) % 10, LABEL_MAGIC),
        "t10k-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (n_test, 28, 28)), IMAGE_MAGIC),
        "t10k-labels-idx1-ubyte": idx_bytes(np.arange(n_test) % 10, LABEL_MAGIC),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in parts.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)


@pytest.mark.parametrize("gz", [True, False])
def test_loader_reads_gz_and_raw_idx_files(tmp_path: Path, gz: bool) -> None:
    write_fake_mnist(tmp_path, gz=gz)
    mnist = data.load_mnist(tmp_path, allow_download=False)
    assert mnist.x_train.shape == (30, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.y_test.tolist() == list(range(10))


def test_wrong_magic_number_names_the_file(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path, gz=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros(30), IMAGE_MAGIC + 7))  # not a label file
    with pytest.raises(MnistError, match="train-labels-idx1-ubyte.*wrong magic"):
        data.load_mnist(tmp_path, allow_download=False)


def test_truncated_file_is_reported(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(MnistError, match="t10k-images-idx3-ubyte.*truncated"):
        data.load_mnist(tmp_path, allow_download=False)


def test_image_and_label_count_mismatch_is_reported(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path)
    labels = idx_bytes(np.zeros(29), LABEL_MAGIC)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(MnistError, match="30 images but .* 29 labels"):
        data.load_mnist(tmp_path, allow_download=False)


def test_wrong_image_size_is_reported(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path, gz=False)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(
        idx_bytes(np.zeros((10, 32, 32)), IMAGE_MAGIC)
    )
    with pytest.raises(MnistError, match="32x32, expected 28x28"):
        data.load_mnist(tmp_path, allow_download=False)


def test_corrupt_gzip_is_reported(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(MnistError, match="train-images-idx3-ubyte.gz: cannot read"):
        data.load_mnist(tmp_path, allow_download=False)


def test_damage_inside_the_compressed_data_names_the_file(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.compress(bytes(range(256)) * 40))  # long enough to have a middle
    raw[40:60] = b"\xff" * 20
    path.write_bytes(bytes(raw))
    with pytest.raises(MnistError, match="t10k-labels-idx1-ubyte.gz: cannot read"):
        data.load_mnist(tmp_path, allow_download=False)


def test_training_refuses_files_that_are_not_the_published_mnist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test files copied over the training ones load fine, but a run on them would train on
    5,000 test images and compare with nothing: prepare() says so instead."""
    real = data.mnist_dir()
    for stem in data.FILES.values():
        source = data._find(real, stem.replace("train-", "t10k-"))
        (tmp_path / (stem + source.suffix if source.suffix == ".gz" else stem)).symlink_to(source)
    monkeypatch.setenv("MNIST_DIR", str(tmp_path))
    swapped = "train-images-idx3-ubyte, train-labels-idx1-ubyte: checksum differs"
    with pytest.raises(MnistError, match=f"not the published MNIST .{swapped}"):
        data.prepare(RunSpec("torch", "dnn", train_limit=2000))


def test_the_published_mnist_passes_the_check() -> None:
    data.check_standard(data.load_mnist(allow_download=False), data.mnist_dir())


def test_missing_files_download_from_mirror_with_checksum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = tmp_path / "mirror"
    write_fake_mnist(mirror)
    sums = {
        p.name[:-3]: hashlib.sha256(gzip.decompress(p.read_bytes())).hexdigest()
        for p in mirror.iterdir()
    }
    monkeypatch.setattr(data, "SHA256", sums)
    monkeypatch.setattr(data, "MIRRORS", (mirror.as_uri() + "/",))
    target = tmp_path / "mnist"
    mnist = data.load_mnist(target)
    assert len(mnist.x_train) == 30
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in mirror.iterdir())


def test_download_with_bad_checksum_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = tmp_path / "mirror"
    write_fake_mnist(mirror)  # real MNIST sums will not match these fake files
    target = tmp_path / "mnist"
    with pytest.raises(MnistError, match="checksum mismatch"):
        data.download(target, ["t10k-labels-idx1-ubyte"], mirrors=(mirror.as_uri() + "/",))
    assert not target.exists()  # not even the folder made for it


def test_offline_error_says_where_to_put_the_files(tmp_path: Path) -> None:
    unreachable = ("http://127.0.0.1:9/",)  # discard port: connection refused
    with pytest.raises(MnistError, match=f"put the four MNIST IDX files .* in {tmp_path}"):
        data.download(tmp_path, ["t10k-labels-idx1-ubyte"], mirrors=unreachable)


def test_a_failed_download_leaves_no_new_folders(tmp_path: Path) -> None:
    target = tmp_path / "typo" / "mnist"
    with pytest.raises(MnistError):
        data.download(target, ["t10k-labels-idx1-ubyte"], mirrors=("http://127.0.0.1:9/",))
    assert list(tmp_path.iterdir()) == []


def test_real_dataset_has_standard_shapes() -> None:
    mnist = data.load_mnist(allow_download=False)
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_test.shape == (10000, 28, 28)
    assert set(np.unique(mnist.y_train)) == set(range(10))


def test_split_is_sized_and_the_same_for_the_same_seed_only() -> None:
    mnist = data.load_mnist(allow_download=False)
    a = data.split(mnist, val_size=5000, seed=7)
    b = data.split(mnist, val_size=5000, seed=7)
    c = data.split(mnist, val_size=5000, seed=8)
    assert len(a.x_train) == 55000 and len(a.x_val) == 5000 and len(a.x_test) == 10000
    assert np.array_equal(a.x_val, b.x_val) and np.array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.x_val, c.x_val)
    train_rows = {row.tobytes() for row in a.x_train}
    overlap = sum(row.tobytes() in train_rows for row in a.x_val)
    assert overlap <= 5  # MNIST has a handful of exact duplicate images, not shared indices


def test_split_indices_are_disjoint_and_cover_training_set(tmp_path: Path) -> None:
    write_fake_mnist(tmp_path, n_train=100)
    mnist = data.load_mnist(tmp_path, allow_download=False)
    # give every image a unique first pixel pair so rows identify indices
    ids = np.arange(100, dtype=np.uint16)
    x = mnist.x_train.copy()
    x[:, 0, 0], x[:, 0, 1] = ids // 256, ids % 256
    mnist = data.Mnist(x, mnist.y_train, mnist.x_test, mnist.y_test)
    part = data.split(mnist, val_size=20, seed=1)

    def index_of(images):
        return {int(img[0, 0]) * 256 + int(img[0, 1]) for img in images}

    val, train = index_of(part.x_val), index_of(part.x_train)
    assert len(val) == 20 and len(train) == 80 and not val & train


def test_train_limit_keeps_the_first_images_of_the_same_split() -> None:
    mnist = data.load_mnist(allow_download=False)
    full = data.split(mnist, seed=3)
    small = data.split(mnist, seed=3, train_limit=1000, test_limit=200)
    assert np.array_equal(small.x_train, full.x_train[:1000])
    assert np.array_equal(small.x_val, full.x_val)  # validation never shrinks with the limit
    assert len(small.x_test) == 200


def test_normalize_uses_the_shared_mean_and_std() -> None:
    images = np.array([[[0, 255]]], dtype=np.uint8)
    out = data.normalize(images)
    assert out.dtype == np.float32
    assert out[0, 0, 0] == pytest.approx(-data.MEAN / data.STD)
    assert out[0, 0, 1] == pytest.approx((1 - data.MEAN) / data.STD)


def test_normalize_gives_the_same_floats_for_uint8_and_for_other_pixel_types() -> None:
    every_pixel = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    looked_up = data.normalize(every_pixel)
    computed = data.normalize(every_pixel.astype(np.float64))
    assert looked_up.dtype == computed.dtype == np.float32
    assert np.array_equal(looked_up, computed)
    exact = (every_pixel / 255.0 - data.MEAN) / data.STD
    assert np.allclose(looked_up, exact, rtol=0, atol=1e-6)
