"""Lightning engine: the torch engine's network inside a ``LightningModule`` + ``Trainer``.

The architecture, optimiser, LR schedule, batching and ``model.pt`` format come from
:mod:`engines.torch_engine` (one definition); what differs is the idiom: Lightning's
``Trainer`` runs the loop, its ``EarlyStopping`` callback stops it, its ``ModelCheckpoint``
keeps the best val-loss weights, and a small callback turns the logged metrics into
:class:`EpochStats` rows.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Iterator

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch.nn import functional as F
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler, TensorDataset

from engines.augment import epoch_images
from engines.core import (
    EVAL_BATCH_SIZE,
    EpochStats,
    OnEpoch,
    RunResult,
    reuse_freed_memory,
    usable_cores,
)
from engines.data import Split
from engines.spec import RunSpec
from engines.torch_engine import (
    ShuffledBatches,
    TrainingImages,
    build_model,
    count_trainable,
    current_lr,
    evaluate_with_probabilities,
    load_predictor,
    make_optimizer,
    make_scheduler,
    save_model,
    to_tensors,
    trainable_params,
)

__all__ = ["DigitClassifier", "load_predictor", "save_model", "train", "trainable_params"]

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


class DigitClassifier(L.LightningModule):
    """Cross-entropy training of :func:`engines.torch_engine.build_model`'s network."""

    def __init__(self, spec: RunSpec) -> None:
        super().__init__()
        self.spec = spec
        self.net = build_model(spec.arch, spec.dropout)
        self.loss_sum = torch.zeros((), dtype=torch.float64)  # this epoch's training sums,
        self.correct = torch.zeros((), dtype=torch.int64)  # reset in on_train_epoch_start
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def on_train_epoch_start(self) -> None:
        self.loss_sum = torch.zeros((), dtype=torch.float64)
        self.correct = torch.zeros((), dtype=torch.int64)
        self.seen = 0

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.spec.label_smoothing)
        # Summed by hand, as tensors (no .item() per step): a self.log call costs ~1.5 ms
        # here, as much as a whole DNN step.
        self.loss_sum += loss.detach() * len(y)
        self.correct += (logits.detach().argmax(1) == y).sum()
        self.seen += len(y)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        metrics = {
            "val_loss": F.cross_entropy(logits, y),
            "val_accuracy": (logits.argmax(1) == y).float().mean(),
        }
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=len(y))

    def on_validation_epoch_end(self) -> None:
        """Log this epoch's training means once, next to the validation metrics.

        Not in ``on_train_epoch_end``: Lightning runs the callbacks' ``on_train_epoch_end``
        before the module's, so :class:`EpochStatsCollector` would not see them yet.
        """
        self.log_dict(
            {
                "train_loss": float(self.loss_sum) / self.seen,
                "train_accuracy": float(self.correct) / self.seen,
            }
        )

    def configure_optimizers(self):
        optimizer = make_optimizer(self.net, self.spec)
        scheduler = make_scheduler(optimizer, self.spec)
        if scheduler is None:
            return optimizer
        config = {"scheduler": scheduler, "interval": "epoch", "frequency": 1}
        if self.spec.scheduler == "plateau":
            config["monitor"] = "val_loss"
        return {"optimizer": optimizer, "lr_scheduler": config}


class EpochStatsCollector(Callback):
    """Turns each epoch's logged metrics into an :class:`EpochStats` and reports it.

    ``on_train_epoch_end`` runs after that epoch's validation, so ``callback_metrics`` then
    holds both the training and the validation means. An epoch's clock starts when
    :class:`MnistData` begins building its training loader, if it did for this epoch (the
    augmented images are built there, before ``on_train_epoch_start``), as the plain PyTorch
    engine times them too.
    """

    def __init__(self, on_epoch: OnEpoch | None) -> None:
        self.on_epoch = on_epoch
        self.history: list[EpochStats] = []
        self._started = 0.0
        self._lr = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch, started = trainer.datamodule.loader_started
        self._started = started if epoch == trainer.current_epoch + 1 else time.perf_counter()
        self._lr = current_lr(trainer.optimizers[0])  # schedulers step after the epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        stats = EpochStats(
            epoch=trainer.current_epoch + 1,
            train_loss=float(metrics["train_loss"]),
            train_accuracy=float(metrics["train_accuracy"]),
            val_loss=float(metrics["val_loss"]),
            val_accuracy=float(metrics["val_accuracy"]),
            lr=self._lr,
            epoch_seconds=time.perf_counter() - self._started,
        )
        self.history.append(stats)
        if self.on_epoch is not None:
            self.on_epoch(stats)


class MnistData(L.LightningDataModule):
    """The split as in-memory loaders; each training step fetches a whole index batch.

    With augmentation on the Trainer reloads the training loader every epoch and gets that
    epoch's images from :func:`engines.augment.epoch_images` (shared by all engines).
    ``loader_started`` (epoch, clock) tells :class:`EpochStatsCollector` when the last
    training loader was built, the start of that epoch's time.
    """

    def __init__(self, spec: RunSpec, data: Split) -> None:
        super().__init__()
        self.spec, self.data = spec, data
        self.loader_started: tuple[int, float] = (0, 0.0)  # no loader built yet
        self.train_batches = ShuffledBatches(len(data.x_train), spec.batch_size, spec.seed)
        self.val_set = TensorDataset(*to_tensors(data.x_val, data.y_val))

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch + 1 if self.trainer else 1
        self.loader_started = (epoch, time.perf_counter())  # part of the epoch's time
        images = epoch_images(self.data.x_train, self.spec, epoch)
        train_set = TrainingImages(images, self.data.y_train)
        # batch_size=None: the sampler yields index batches, so no per-sample fetch and collate.
        return DataLoader(train_set, sampler=self.train_batches, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        batches = BatchSampler(SequentialSampler(self.val_set), EVAL_BATCH_SIZE, drop_last=False)
        return DataLoader(self.val_set, sampler=batches, batch_size=None)


def quiet_lightning() -> None:
    """Silence Lightning's start-up banner and the advice that doesn't apply here."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # In-memory tensors: worker processes would only add overhead.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # Lightning 2.6 still uses a torch pytree class that torch 2.14 deprecates; not ours to fix.
    warnings.filterwarnings(
        "ignore", message=r".*isinstance\(treespec, LeafSpec\).*", category=FutureWarning
    )


@contextlib.contextmanager
def without_nvml_cuda_check() -> Iterator[None]:
    """Let ``torch.cuda.is_available()`` answer from its cheap runtime check while training.

    Importing Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` so that the check does not
    spoil forked data-loader workers. Our loaders have no workers, but Adam asks the question
    on every step, and with that setting each answer tries to load the NVML library. On a
    machine without it that made a batch-32 DNN epoch ~24 % slower (BENCHMARKS.md).
    Restored afterwards.
    """
    saved = os.environ.pop(NVML_CHECK, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[NVML_CHECK] = saved


def train(spec: RunSpec, data: Split, on_epoch: OnEpoch | None = None) -> RunResult:
    """Train ``spec`` on ``data`` with a Lightning ``Trainer``; best val-loss weights restored."""
    quiet_lightning()
    torch.set_num_threads(usable_cores())  # as TensorFlow does by default: same cores each
    reuse_freed_memory()
    L.seed_everything(spec.seed, verbose=False)
    module = DigitClassifier(spec)
    datamodule = MnistData(spec, data)
    collector = EpochStatsCollector(on_epoch)

    with tempfile.TemporaryDirectory(prefix="digit-lab-lightning-") as workdir:
        checkpoint = ModelCheckpoint(
            dirpath=workdir, monitor="val_loss", mode="min", save_top_k=1, save_weights_only=True
        )
        stopping = EarlyStopping(
            monitor="val_loss",
            patience=spec.es_patience,
            min_delta=spec.es_min_delta,
            mode="min",
            check_finite=False,  # a NaN loss is an epoch without improvement, as elsewhere
        )
        trainer = L.Trainer(
            max_epochs=spec.epochs,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            reload_dataloaders_every_n_epochs=1 if spec.augmented else 0,
            default_root_dir=workdir,
            callbacks=[collector, stopping, checkpoint],
        )
        try:
            with without_nvml_cuda_check():
                trainer.fit(module, datamodule=datamodule)
        except SystemExit as err:
            # Lightning turns Ctrl+C into sys.exit(1); hand the interrupt back to the caller.
            raise KeyboardInterrupt from err
        best_epoch = restore_best(module, checkpoint, collector.history)

    x_test, y_test = to_tensors(data.x_test, data.y_test)
    test_loss, test_accuracy, probabilities = evaluate_with_probabilities(
        module.net, x_test, y_test
    )
    return RunResult(
        history=collector.history,
        best_epoch=best_epoch,
        stopped_epoch=len(collector.history),
        test_loss=test_loss,
        test_accuracy=test_accuracy,
        test_probabilities=probabilities,
        trainable_params=count_trainable(module.net),
        model=module.net,
    )


def restore_best(
    module: DigitClassifier, checkpoint: ModelCheckpoint, history: list[EpochStats]
) -> int:
    """Load the best checkpoint's weights into ``module``; returns its 1-based epoch.

    With no finite validation loss at all there is no best epoch: the checkpoint would
    hold epoch 1 (it ranks NaN as infinity), the other engines keep the last weights.
    """
    if not any(math.isfinite(stats.val_loss) for stats in history):
        return len(history)
    saved = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    module.load_state_dict(saved["state_dict"])
    return int(saved["epoch"]) + 1
