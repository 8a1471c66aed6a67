"""The small contract every engine implements, and the settings they all share.

An engine module (``keras_engine``, ``torch_engine``, ``lightning_engine``) exposes:

* ``train(spec, data, on_epoch) -> RunResult`` — trains on ``data`` (an
  :class:`engines.data.Split`), calls ``on_epoch(EpochStats)`` after every epoch, restores
  the best validation-loss weights, evaluates once on the test set.
* ``save_model(result, run_dir) -> Path`` — writes ``model.keras`` or ``model.pt``.
* ``load_predictor(run_dir) -> Predictor``.
* ``trainable_params(arch) -> int`` — the architecture's size as this framework builds it
  (the same in all three: a test pins it).

Framework defaults that would otherwise make the three disagree are fixed here once.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import math
import os
import platform
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

# One setting for everything where framework defaults differ (see README "Shared settings").
BN_MOMENTUM = 0.1  # PyTorch convention: weight of the new batch; Keras momentum = 1 - this.
BN_EPSILON = 1e-5
ADAM_EPSILON = 1e-7
# Weight init: Glorot (Xavier) uniform for every Dense/Conv kernel, zero biases.
# Images per forward pass when validating, testing and predicting many images: bounds memory
# and changes no result. 250 keeps the CNN's largest activation (250 x 32 x 28 x 28 floats,
# 25 MB) under glibc's mmap limit, so it reuses heap memory (see reuse_freed_memory); at
# 1,000 a CNN validation pass of 5,000 images took 1.0-1.5 s here instead of 0.5 s.
EVAL_BATCH_SIZE = 250


def leaves_one_over(n: int, batch_size: int) -> bool:
    """Whether batching ``n`` training images leaves a lone image at the end. Every engine
    then trains it in the batch before (BatchNorm cannot learn from a batch of one: PyTorch
    refuses it, Keras would quietly skew its running variance)."""
    return n > batch_size and n % batch_size == 1


def training_batch_count(n: int, batch_size: int) -> int:
    """Batches in one training epoch of ``n`` images (see :func:`leaves_one_over`)."""
    return n // batch_size if leaves_one_over(n, batch_size) else math.ceil(n / batch_size)


@dataclass(frozen=True)
class EpochStats:
    """One row of ``history.parquet`` (before run_id/framework/arch are added)."""

    epoch: int  # 1-based
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float  # the learning rate used during this epoch
    epoch_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


OnEpoch = Callable[[EpochStats], None]


@dataclass
class RunResult:
    """What ``train`` returns. ``model`` is the framework's own object, weights = best epoch."""

    history: list[EpochStats]
    best_epoch: int
    stopped_epoch: int
    test_loss: float
    test_accuracy: float
    test_probabilities: np.ndarray  # float (N_test, 10)
    trainable_params: int
    model: Any = field(repr=False, default=None)


def check_images(images: np.ndarray) -> np.ndarray:
    """``images`` as uint8, if they are MNIST-like: shape (N, 28, 28), whole pixel values
    0-255. Every predictor normalises from that scale, so anything else (floats in 0-1, say)
    is refused here rather than given a wrong answer."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"images: expected shape (N, 28, 28), got {images.shape}")
    if images.dtype == np.uint8:
        return images
    numeric = np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)
    if not numeric or (images.size and not _whole_pixels(images)):
        values = f"{images.min()}..{images.max()}" if numeric and images.size else "values"
        raise ValueError(
            f"images: expected whole pixel values 0-255 as in MNIST (uint8), got {images.dtype} "
            f"{values}; scale 0-1 images by 255"
        )
    return images.astype(np.uint8)


def _whole_pixels(images: np.ndarray) -> bool:
    finite = np.isfinite(images).all()
    return bool(finite and images.min() >= 0 and images.max() <= 255 and (images % 1 == 0).all())


class Predictor(Protocol):
    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28) MNIST-like images -> float (N, 10) probabilities."""
        ...


ENGINE_MODULES = {
    "keras": "engines.keras_engine",
    "torch": "engines.torch_engine",
    "lightning": "engines.lightning_engine",
}


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# glibc's mallopt parameters (malloc.h) and the largest mmap threshold on 64-bit systems.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MAX_MMAP_THRESHOLD = 32 * 1024 * 1024


def runs_on_glibc() -> bool:
    """Whether this process's C library is glibc (whose malloc ``mallopt`` tunes)."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def reuse_freed_memory() -> None:
    """Make glibc's malloc keep freed memory for the next allocation (a no-op elsewhere).

    A training step allocates and frees activation buffers of several MB. By default glibc
    serves such sizes with fresh mmap'd pages and hands them back on free, so every step
    touches new pages and the kernel zeroes each one on a page fault: 30,000-110,000 faults
    per 20 CNN steps at batch 128 here, a tenth to a quarter of the step time
    (BENCHMARKS.md). Serving everything up to 32 MB from the heap and never trimming it
    makes the buffers reusable; the peak memory stays the largest step's. Called by the
    PyTorch and Lightning engines' ``train`` (TensorFlow has its own allocator: no faults
    to save, no change measured).
    """
    if not runs_on_glibc():
        return
    libc = ctypes.CDLL(None)  # the C library this process already runs on
    libc.mallopt(M_MMAP_THRESHOLD, MAX_MMAP_THRESHOLD)
    libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)  # an int: the largest it takes


def import_engine(framework: str) -> ModuleType:
    """Import an engine module, torch side first.

    On this stack, importing TensorFlow before torchvision/Lightning in the same process
    segfaults; importing the torch side first is safe. So whenever Keras is requested we
    import torch and Lightning beforehand (when they are installed).
    """
    if framework not in ENGINE_MODULES:
        raise ValueError(f"framework: must be one of {'|'.join(ENGINE_MODULES)}, got {framework!r}")
    if framework == "keras":
        import_torch_side_first()
    return importlib.import_module(ENGINE_MODULES[framework])


def import_torch_side_first() -> None:
    for name in ("torch", "torchvision", "lightning"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def short_error(err: BaseException, limit: int = 160) -> str:
    """The error's type and first line, cut to ``limit`` characters (for a one-line message)."""
    lines = str(err).strip().splitlines()
    text = f"{type(err).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def load_predictor(run_dir: str | Path) -> Predictor:
    """A predictor for a finished run, whatever framework trained it.

    A missing or damaged model file raises ``StoreError`` naming the run, whichever of its
    many exception types the framework raised (torch, Keras and zipfile each have their own).
    """
    from engines import store

    run_dir = Path(run_dir)
    run = store.read_run(run_dir)
    engine = import_engine(run["spec"]["framework"])
    model = store.model_path(run_dir)
    # Both formats (torch.save, .keras) are zip archives. A cut-short one gets a plain reason:
    # the frameworks' own words for it are misleading (Keras: "File not found").
    if model is not None and not zipfile.is_zipfile(model):
        raise store.StoreError(
            f"{run_dir.name}: its model cannot be loaded ({model.name} is damaged or cut short: "
            "not a complete zip archive)"
        )
    try:
        return engine.load_predictor(run_dir)
    except Exception as err:
        reason = short_error(err)
        raise store.StoreError(f"{run_dir.name}: its model cannot be loaded ({reason})") from err
