"""PyTorch engine: the two architectures as ``nn.Module`` s and a plain training loop.

The loop is deliberately short and explicit (in the spirit of pytorch/examples'
``mnist/main.py``): :func:`train_one_epoch`, :func:`evaluate`, a scheduler from
``torch.optim.lr_scheduler`` and a tiny :class:`EarlyStopper`. The model builders, the
scheduler factory, evaluation and the ``model.pt`` format are shared with the Lightning
engine, so both train exactly the same network and save the same file.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim import lr_scheduler

from engines import store
from engines.augment import epoch_images
from engines.core import (
    ADAM_EPSILON,
    BN_EPSILON,
    BN_MOMENTUM,
    EVAL_BATCH_SIZE,
    EpochStats,
    OnEpoch,
    RunResult,
    check_images,
    leaves_one_over,
    reuse_freed_memory,
    training_batch_count,
    usable_cores,
)
from engines.data import MEAN, STD, Split, normalize
from engines.spec import RunSpec

MODEL_FILE = "model.pt"


# --- architectures -----------------------------------------------------------------------
class DigitNet(nn.Sequential):
    """One of the two reference networks; remembers ``arch`` and ``dropout`` so it can be
    saved and rebuilt from ``model.pt``. Takes normalised images shaped (N, 1, 28, 28)."""

    def __init__(self, arch: str, dropout: float) -> None:
        layers = {"dnn": dnn_layers, "cnn": cnn_layers}
        if arch not in layers:
            raise ValueError(f"arch: must be one of {'|'.join(layers)}, got {arch!r}")
        super().__init__(*layers[arch](dropout))
        self.arch = arch
        self.dropout = dropout


def dnn_layers(dropout: float) -> list[nn.Module]:
    return [
        nn.Flatten(),
        *dense_block(784, 128, dropout),
        *dense_block(128, 64, dropout),
        nn.Linear(64, 10),
    ]


def dense_block(n_in: int, n_out: int, dropout: float) -> list[nn.Module]:
    """Linear -> ReLU -> BatchNorm -> Dropout (BN after the activation, as in the reference)."""
    return [
        nn.Linear(n_in, n_out),
        nn.ReLU(),
        nn.BatchNorm1d(n_out, eps=BN_EPSILON, momentum=BN_MOMENTUM),
        Dropout(dropout),
    ]


def cnn_layers(dropout: float) -> list[nn.Module]:
    return [
        *conv_block(1, 32, dropout),  # 28x28 -> 14x14
        *conv_block(32, 64, dropout),  # 14x14 -> 7x7
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        nn.ReLU(),
        Dropout(dropout),
        nn.Linear(128, 10),
    ]


def conv_block(n_in: int, n_out: int, dropout: float) -> list[nn.Module]:
    """Conv 3x3 ('same' padding) -> ReLU -> BatchNorm -> MaxPool 2 -> Dropout."""
    return [
        nn.Conv2d(n_in, n_out, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(n_out, eps=BN_EPSILON, momentum=BN_MOMENTUM),
        nn.MaxPool2d(2),
        Dropout(dropout),
    ]


class Dropout(nn.Dropout):
    """``nn.Dropout`` with its mask drawn by ``torch.rand_like`` instead of ``bernoulli_``.

    The same thing (each activation kept with probability 1 - p, kept ones scaled by
    1 / (1 - p)), but ``bernoulli_`` is slow on this CPU: it was 19 % of a CNN training step
    (BENCHMARKS.md, "Where a CNN step goes"); ``rand_like`` draws the mask several times faster.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand_like(x) >= self.p
        return x * keep * (1.0 / (1.0 - self.p))


def init_weights(module: nn.Module) -> None:
    """Glorot-uniform kernels and zero biases (the Keras defaults, shared by all engines)."""
    if isinstance(module, nn.Linear | nn.Conv2d):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


def build_model(arch: str, dropout: float) -> DigitNet:
    """A freshly initialised network (seed torch first for reproducible weights)."""
    model = DigitNet(arch, dropout)
    model.apply(init_weights)
    if arch == "cnn":
        # NHWC convolutions are faster on this CPU (BENCHMARKS.md); the maths is unchanged.
        model = model.to(memory_format=torch.channels_last)
    return model


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def trainable_params(arch: str) -> int:
    """Trainable parameter count of an architecture (DNN 109,770; CNN 421,834)."""
    return count_trainable(build_model(arch, dropout=0.0))  # dropout has no weights


# --- optimiser and schedule (shared with the Lightning engine) ---------------------------
def make_optimizer(model: nn.Module, spec: RunSpec) -> torch.optim.Optimizer:
    # fused: one kernel for the whole update (~0.2 ms less per step on this CPU than the
    # default per-parameter loop; a DNN step is ~1 ms).
    return torch.optim.Adam(model.parameters(), lr=spec.lr, eps=ADAM_EPSILON, fused=True)


def make_scheduler(
    optimizer: torch.optim.Optimizer, spec: RunSpec
) -> lr_scheduler.LRScheduler | lr_scheduler.ReduceLROnPlateau | None:
    """The spec's LR schedule, stepped once per epoch (plateau: with the validation loss)."""
    if spec.scheduler == "plateau":
        # threshold=0: any decrease of val_loss counts as an improvement.
        return lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=spec.plateau_factor,
            patience=spec.plateau_patience,
            threshold=0.0,
            cooldown=0,
        )
    if spec.scheduler == "step":
        return lr_scheduler.StepLR(optimizer, step_size=spec.step_size, gamma=spec.step_gamma)
    if spec.scheduler == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=spec.epochs)
    return None


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


# --- data --------------------------------------------------------------------------------
def to_tensors(
    images: np.ndarray, labels: np.ndarray | None = None
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 28, 28) [+ labels] -> normalised float32 (N, 1, 28, 28) [+ int64 labels]."""
    x = torch.from_numpy(normalize(images)).unsqueeze(1)
    if labels is None:
        return x
    return x, torch.from_numpy(labels.astype(np.int64))


def normalize_batch(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32, exactly the floats of :func:`engines.data.normalize`.

    Arithmetic rather than that function's lookup table: indexing the table with a torch
    batch cost ~3x more per epoch here (BENCHMARKS.md).
    """
    return images.float().div_(255.0).sub_(MEAN).div_(STD)


class TrainingImages(torch.utils.data.Dataset):
    """The training set kept as uint8; each batch is normalised as it is fetched.

    Normalising all 55,000 images up front, every augmented epoch, built a 172 MB float
    copy: ~240 MB more peak memory and ~0.1 s per epoch in a micro-benchmark (BENCHMARKS.md).
    Indexed by a whole index batch.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = torch.from_numpy(images).unsqueeze(1)  # (N, 1, 28, 28), shares memory
        self.labels = torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # index_select: the same rows as images[idx], ~5x faster for a batch of 128 here.
        images = torch.index_select(self.images, 0, idx)
        return normalize_batch(images), torch.index_select(self.labels, 0, idx)


class ShuffledBatches(torch.utils.data.Sampler):
    """Index batches of a fresh seeded permutation every epoch.

    A lone sample left over at the end joins the batch before it: BatchNorm cannot train on
    a batch of one (e.g. 55,000 images in batches of 27).
    """

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n = n
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return training_batch_count(self.n, self.batch_size)

    def __iter__(self):
        batches = list(torch.randperm(self.n, generator=self.generator).split(self.batch_size))
        if leaves_one_over(self.n, self.batch_size):
            batches[-2:] = [torch.cat(batches[-2:])]
        return iter(batches)


# --- one epoch, evaluation ---------------------------------------------------------------
def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_set: TrainingImages,
    batches: ShuffledBatches,
    label_smoothing: float = 0.0,
) -> tuple[float, float]:
    """One pass in train mode; returns the epoch's mean loss (the training objective, label
    smoothing included) and accuracy over its samples."""
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)
    # The index batches are fetched by hand: a DataLoader over the same dataset and sampler
    # (as in the Lightning engine) adds ~0.02 s to a 1 s DNN epoch (BENCHMARKS.md).
    for idx in batches:
        inputs, targets = train_set[idx]
        optimizer.zero_grad(set_to_none=True)
        logits = model(inputs)
        loss = F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
        loss.backward()
        optimizer.step()
        # Accumulate as tensors: no .item() per step.
        loss_sum += loss.detach() * len(idx)
        correct += (logits.detach().argmax(1) == targets).sum()
    return float(loss_sum) / len(train_set), float(correct) / len(train_set)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits in eval mode (BatchNorm running stats, no dropout), in memory-bounded chunks."""
    model.eval()
    return torch.cat([model(chunk) for chunk in x.split(EVAL_BATCH_SIZE)])


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the whole set, in eval mode."""
    loss, accuracy, _ = evaluate_with_probabilities(model, x, y)
    return loss, accuracy


def evaluate_with_probabilities(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[float, float, np.ndarray]:
    logits = predict_logits(model, x)
    loss = F.cross_entropy(logits, y).item()
    accuracy = (logits.argmax(1) == y).float().mean().item()
    probabilities = torch.softmax(logits, dim=1).numpy().astype(np.float32)
    return loss, accuracy, probabilities


# --- early stopping ----------------------------------------------------------------------
class EarlyStopper:
    """Stop after ``patience`` epochs whose val loss is not below ``best - min_delta``.

    Keeps a copy of the weights with the lowest val loss seen, to restore at the end
    (the same rule as Lightning's ``EarlyStopping`` + ``ModelCheckpoint``).
    """

    def __init__(self, patience: int, min_delta: float) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.reference = math.inf  # last val loss that counted as an improvement
        self.epochs_without_improvement = 0
        self.best_loss = math.inf
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def update(self, val_loss: float, epoch: int, model: nn.Module) -> bool:
        """Take one epoch's val loss (copying the weights if it is the best yet); returns
        whether training should stop."""
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch = val_loss, epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if val_loss < self.reference - self.min_delta:
            self.reference = val_loss
            self.epochs_without_improvement = 0
            return False
        self.epochs_without_improvement += 1
        return self.epochs_without_improvement >= self.patience

    def restore_best(self, model: nn.Module) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


# --- the run -----------------------------------------------------------------------------
def train(spec: RunSpec, data: Split, on_epoch: OnEpoch | None = None) -> RunResult:
    """Train ``spec`` on ``data``; weights of the best val-loss epoch are restored at the end."""
    torch.set_num_threads(usable_cores())  # as TensorFlow does by default: same cores each
    reuse_freed_memory()
    torch.manual_seed(spec.seed)
    model = build_model(spec.arch, spec.dropout)
    optimizer = make_optimizer(model, spec)
    scheduler = make_scheduler(optimizer, spec)
    stopper = EarlyStopper(spec.es_patience, spec.es_min_delta)
    train_set = TrainingImages(data.x_train, data.y_train)
    x_val, y_val = to_tensors(data.x_val, data.y_val)
    batches = ShuffledBatches(len(train_set), spec.batch_size, spec.seed)

    history: list[EpochStats] = []
    for epoch in range(1, spec.epochs + 1):
        started = time.perf_counter()
        lr = current_lr(optimizer)
        if spec.augmented:
            train_set = TrainingImages(epoch_images(data.x_train, spec, epoch), data.y_train)
        train_loss, train_accuracy = train_one_epoch(
            model, optimizer, train_set, batches, spec.label_smoothing
        )
        val_loss, val_accuracy = evaluate(model, x_val, y_val)
        step_scheduler(scheduler, val_loss)
        stats = EpochStats(
            epoch=epoch,
            train_loss=train_loss,
            train_accuracy=train_accuracy,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            lr=lr,
            epoch_seconds=time.perf_counter() - started,
        )
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        if stopper.update(val_loss, epoch, model):
            break

    stopper.restore_best(model)
    x_test, y_test = to_tensors(data.x_test, data.y_test)
    test_loss, test_accuracy, probabilities = evaluate_with_probabilities(model, x_test, y_test)
    return RunResult(
        history=history,
        best_epoch=stopper.best_epoch or len(history),
        stopped_epoch=len(history),
        test_loss=test_loss,
        test_accuracy=test_accuracy,
        test_probabilities=probabilities,
        trainable_params=count_trainable(model),
        model=model,
    )


def step_scheduler(scheduler: lr_scheduler.LRScheduler | None, val_loss: float) -> None:
    if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
        scheduler.step(val_loss)
    elif scheduler is not None:
        scheduler.step()


# --- saving and predicting ---------------------------------------------------------------
def save_model(result: RunResult, run_dir: str | Path) -> Path:
    """Write ``model.pt`` (arch, dropout, plain ``state_dict``) atomically; returns its path."""
    model: DigitNet = result.model
    path = Path(run_dir) / MODEL_FILE
    payload = {"arch": model.arch, "dropout": model.dropout, "state_dict": model.state_dict()}
    store.atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


class TorchPredictor:
    """``predict_proba`` for a network trained by the torch or Lightning engine."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        images = check_images(images)
        logits = predict_logits(self.model, to_tensors(images))
        return torch.softmax(logits, dim=1).numpy()


def load_predictor(run_dir: str | Path) -> TorchPredictor:
    """Rebuild the network from ``run_dir/model.pt`` (tensors and plain types only)."""
    saved = torch.load(Path(run_dir) / MODEL_FILE, map_location="cpu", weights_only=True)
    model = DigitNet(saved["arch"], saved["dropout"])
    model.load_state_dict(saved["state_dict"])
    return TorchPredictor(model)
