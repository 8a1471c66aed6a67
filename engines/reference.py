"""BASELINE ONLY: the reference pipelines that ``python -m engines bench`` compares against.

These are *not* Digit Lab's engines. They are the MNIST pipelines as a tutorial writes them,
kept here so the benchmark can time "what users write by hand" on the same machine, in the
same invocation, on the same images and with the same architectures:

* Keras (DNN and CNN): inputs ``/ 255`` as NumPy arrays, ``model.fit(..., batch_size=32)``.
* PyTorch (DNN and CNN): a torchvision MNIST dataset with ``ToTensor()`` +
  ``Normalize((0.5,), (0.5,))`` applied image by image, ``DataLoader(batch_size=32)`` and the
  classic ``for x, y in loader`` loop.
* Lightning (DNN and CNN): the same dataset and loaders, a small ``LightningModule`` that
  logs its loss with ``self.log`` and a default ``Trainer``.

The torch-side datasets are torchvision's own ``MNIST`` class (its per-image
``__getitem__``: uint8 -> PIL image -> transforms) over the in-memory arrays, so nothing is
downloaded and every pipeline sees exactly the images of :func:`engines.data.split`.

To keep the comparison conservative (never flattering Digit Lab), the reference runs without
progress bars, loggers or checkpoints, which a tutorial would leave on. Everything else —
per-image transforms, batch 32 for training *and* validation, per-step logging — is what the
tutorials do. An "epoch" is one pass over the training images plus one over the validation
images, as in the engines' ``epoch_seconds``.

Each framework is imported inside its own function: a process runs one pipeline only, and
TensorFlow must never be imported before torch (see :mod:`engines.core`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from engines.data import Split

BATCH_SIZE = 32
DROPOUT = 0.3

# Called after every epoch with (seconds of that epoch, validation accuracy).
OnEpoch = Callable[[float, float], None]


def train_reference(framework: str, arch: str, data: Split, epochs: int, on_epoch: OnEpoch) -> int:
    """Train the reference pipeline of one pair for ``epochs`` epochs; returns its
    trainable parameter count (to check it is the engines' architecture)."""
    pipelines = {
        "keras": keras_reference,
        "torch": torch_reference,
        "lightning": lightning_reference,
    }
    if framework not in pipelines:
        raise ValueError(f"framework: must be one of {'|'.join(pipelines)}, got {framework!r}")
    if arch not in ("dnn", "cnn"):
        raise ValueError(f"arch: must be dnn or cnn, got {arch!r}")
    return pipelines[framework](arch, data, epochs, on_epoch)


# --- Keras -------------------------------------------------------------------------------
def keras_reference(arch: str, data: Split, epochs: int, on_epoch: OnEpoch) -> int:
    import keras

    x_train = data.x_train / 255.0
    x_val = data.x_val / 255.0
    if arch == "cnn":
        x_train = x_train.reshape(-1, 28, 28, 1)
        x_val = x_val.reshape(-1, 28, 28, 1)

    model = keras_model(keras, arch)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            on_epoch(time.perf_counter() - self.started, float(logs["val_accuracy"]))

    model.fit(
        x_train,
        data.y_train,
        batch_size=BATCH_SIZE,
        epochs=epochs,
        validation_data=(x_val, data.y_val),
        callbacks=[EpochTimer()],
        verbose=0,
    )
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def keras_model(keras, arch: str):
    layers = keras.layers
    if arch == "dnn":
        return keras.Sequential(
            [
                keras.Input(shape=(28, 28)),
                layers.Flatten(),
                layers.Dense(128, activation="relu"),
                layers.BatchNormalization(),
                layers.Dropout(DROPOUT),
                layers.Dense(64, activation="relu"),
                layers.BatchNormalization(),
                layers.Dropout(DROPOUT),
                layers.Dense(10, activation="softmax"),
            ]
        )
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D(2),
            layers.Dropout(DROPOUT),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D(2),
            layers.Dropout(DROPOUT),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(DROPOUT),
            layers.Dense(10, activation="softmax"),
        ]
    )


# --- PyTorch (shared by the torch and Lightning references) ------------------------------
def torch_model(arch: str):
    from torch import nn

    if arch == "dnn":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(28 * 28, 128),
            nn.ReLU(),
            nn.BatchNorm1d(128),
            nn.Dropout(DROPOUT),
            nn.Linear(128, 64),
            nn.ReLU(),
            nn.BatchNorm1d(64),
            nn.Dropout(DROPOUT),
            nn.Linear(64, 10),
        )
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(32),
        nn.MaxPool2d(2),
        nn.Dropout(DROPOUT),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(64),
        nn.MaxPool2d(2),
        nn.Dropout(DROPOUT),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        nn.ReLU(),
        nn.Dropout(DROPOUT),
        nn.Linear(128, 10),
    )


def torchvision_loaders(data: Split):
    """Train and validation ``DataLoader`` s over torchvision MNIST datasets (batch 32)."""
    from torch.utils.data import DataLoader
    from torchvision import transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    train_set = in_memory_mnist(data.x_train, data.y_train, transform)
    val_set = in_memory_mnist(data.x_val, data.y_val, transform)
    return (
        DataLoader(train_set, batch_size=BATCH_SIZE, shuffle=True),
        DataLoader(val_set, batch_size=BATCH_SIZE),
    )


def in_memory_mnist(images: np.ndarray, labels: np.ndarray, transform):
    """torchvision's ``MNIST`` dataset (its own per-image ``__getitem__``) over given arrays,
    instead of the files it would otherwise download."""
    import torch
    from torchvision.datasets import MNIST, VisionDataset

    dataset = MNIST.__new__(MNIST)
    VisionDataset.__init__(dataset, root=None, transform=transform)
    dataset.train = True
    dataset.data = torch.from_numpy(np.ascontiguousarray(images))
    dataset.targets = torch.from_numpy(labels.astype(np.int64))
    return dataset


def torch_reference(arch: str, data: Split, epochs: int, on_epoch: OnEpoch) -> int:
    import torch
    from torch.nn import functional as F

    train_loader, val_loader = torchvision_loaders(data)
    model = torch_model(arch)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        for images, labels in train_loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in val_loader:
                correct += (model(images).argmax(dim=1) == labels).sum().item()
        on_epoch(time.perf_counter() - started, correct / len(val_loader.dataset))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- Lightning ---------------------------------------------------------------------------
def lightning_reference(arch: str, data: Split, epochs: int, on_epoch: OnEpoch) -> int:
    import lightning as L
    import torch
    from torch.nn import functional as F

    class LitClassifier(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = torch_model(arch)

        def training_step(self, batch, batch_idx):
            images, labels = batch
            loss = F.cross_entropy(self.model(images), labels)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            images, labels = batch
            logits = self.model(images)
            self.log("val_loss", F.cross_entropy(logits, labels))
            self.log("val_acc", (logits.argmax(dim=1) == labels).float().mean())

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    class EpochTimer(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            self.started = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):  # after this epoch's validation
            seconds = time.perf_counter() - self.started
            on_epoch(seconds, float(trainer.callback_metrics["val_acc"]))

    train_loader, val_loader = torchvision_loaders(data)
    module = LitClassifier()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        callbacks=[EpochTimer()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, train_loader, val_loader)
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
