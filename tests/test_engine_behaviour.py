"""Every engine behaves the same way where a comparison between frameworks depends on it.

The same reference architectures (same trainable parameter count), early stopping on the
validation loss that hands back the best epoch's weights, and learning-rate schedules that
follow the spec, epoch by epoch. Engines are imported only through ``import_engine``, which
imports the torch side before TensorFlow (the other order segfaults).

Training runs here are tiny: the DNN on 300 images, a few epochs each.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from engines.core import EpochStats, RunResult, check_images, import_engine, runs_on_glibc
from engines.data import Mnist, Split, load_mnist, split
from engines.spec import RunSpec

FRAMEWORKS = ("keras", "torch", "lightning")
EXPECTED_PARAMS = {"dnn": 109_770, "cnn": 421_834}

# A higher LR than the default makes 300 images overfit within a few epochs, so the
# validation loss turns upwards: early stopping and the plateau schedule have work to do.
TINY = {
    "arch": "dnn",
    "train_limit": 300,
    "val_size": 500,
    "test_limit": 200,
    "batch_size": 32,
    "lr": 5e-3,
    "augment_shift": 0,
}


@dataclass
class TinyRun:
    spec: RunSpec
    data: Split
    result: RunResult
    reported: list[EpochStats]


@pytest.fixture(scope="module")
def mnist() -> Mnist:
    return load_mnist(allow_download=False)


def train_tiny(framework: str, mnist: Mnist, **changes) -> TinyRun:
    spec = RunSpec(framework=framework, **{**TINY, **changes})
    data = split(
        mnist,
        val_size=spec.val_size,
        seed=spec.seed,
        train_limit=spec.train_limit,
        test_limit=spec.test_limit,
    )
    reported: list[EpochStats] = []
    result = import_engine(framework).train(spec, data, reported.append)
    return TinyRun(spec, data, result, reported)


def lr_column(run: TinyRun) -> list[float]:
    return [stats.lr for stats in run.result.history]


def saved_and_reloaded_probabilities(run: TinyRun, images: np.ndarray, folder: Path) -> np.ndarray:
    """``images`` through the run's model after a save and a load, as the dashboard sees it."""
    engine = import_engine(run.spec.framework)
    engine.save_model(run.result, folder)
    return engine.load_predictor(folder).predict_proba(images)


def log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    p_true = probabilities[np.arange(len(labels)), labels].astype(np.float64)
    return float(-np.mean(np.log(p_true)))


# --- architectures -----------------------------------------------------------------------
@pytest.mark.parametrize("arch", sorted(EXPECTED_PARAMS))
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_architectures_have_the_reference_trainable_parameter_count(
    framework: str, arch: str
) -> None:
    engine = import_engine(framework)
    assert engine.trainable_params(arch) == EXPECTED_PARAMS[arch]


def test_torch_dropout_drops_p_of_activations_and_rescales_the_rest() -> None:
    """The PyTorch engines' faster dropout is still dropout: ~p zeroed, the rest scaled by
    1 / (1 - p) so the mean is kept, a fresh mask per call, and nothing dropped in eval."""
    import_engine("torch")
    import torch

    from engines.torch_engine import Dropout

    dropout = Dropout(0.3).train()
    x = torch.ones(200_000)
    out = dropout(x)
    assert abs(float((out == 0).float().mean()) - 0.3) < 0.01
    assert torch.allclose(out[out != 0], torch.full_like(out[out != 0], 1 / 0.7))
    assert abs(float(out.mean()) - 1.0) < 0.01
    assert not torch.equal(dropout(x), out)
    assert torch.equal(dropout.eval()(x), x)


def test_torch_training_batches_hold_the_shared_normalised_pixels() -> None:
    """The PyTorch engines normalise each training batch as it is fetched; the floats must be
    the ones every other engine (and evaluation) gets from ``engines.data.normalize``."""
    import_engine("torch")
    import torch

    from engines.data import normalize
    from engines.torch_engine import TrainingImages

    # Eight 16x16 images, each holding every uint8 value once, each in another order.
    images = np.stack(
        [np.roll(np.arange(256, dtype=np.uint8), k).reshape(16, 16) for k in range(8)]
    )
    labels = np.arange(8)
    train_set = TrainingImages(images, labels)

    inputs, targets = train_set[torch.tensor([6, 1, 3])]

    assert inputs.dtype == torch.float32 and inputs.shape == (3, 1, 16, 16)
    assert np.array_equal(inputs[:, 0].numpy(), normalize(images[[6, 1, 3]]))
    assert targets.tolist() == [6, 1, 3]
    assert len(train_set) == 8


@pytest.mark.parametrize(("arch", "augment_shift"), [("dnn", 0), ("dnn", 1), ("cnn", 0)])
def test_a_lone_image_left_over_joins_the_last_batch_in_keras_as_in_pytorch(
    mnist: Mnist, arch: str, augment_shift: int
) -> None:
    """2,049 images in batches of 128 leave one over: a batch of one would skew Keras's
    BatchNorm statistics at the end of every epoch, where PyTorch's never see one."""
    spec = RunSpec("keras", arch, epochs=1, batch_size=128, train_limit=2049,
                   augment_shift=augment_shift, augment_rotate=0)  # fmt: skip
    data = split(mnist, val_size=500, seed=spec.seed, train_limit=spec.train_limit)
    torch_engine = import_engine("torch")
    keras_engine = import_engine("keras")

    fit_data = keras_engine.training_data(spec, data)["x"]
    keras_sizes = [len(labels) for _, labels in fit_data.as_numpy_iterator()]
    torch_sizes = [len(batch) for batch in torch_engine.ShuffledBatches(2049, 128, spec.seed)]

    assert keras_sizes == torch_sizes == [128] * 15 + [129]


def test_lightning_trains_without_the_per_step_nvml_check_and_restores_it(mnist: Mnist) -> None:
    """Importing Lightning turns on torch's NVML-based CUDA check, which Adam then pays on
    every step (0.13 ms here). Training turns it off and puts Lightning's setting back."""
    import os

    import_engine("lightning")
    from engines.lightning_engine import NVML_CHECK

    assert os.environ.get(NVML_CHECK) == "1"  # what Lightning's import set
    seen_while_training: list[str | None] = []
    spec = RunSpec(framework="lightning", **{**TINY, "epochs": 1})
    data = split(mnist, val_size=spec.val_size, seed=spec.seed, train_limit=spec.train_limit)
    import_engine("lightning").train(
        spec, data, lambda stats: seen_while_training.append(os.environ.get(NVML_CHECK))
    )
    assert seen_while_training == [None]
    assert os.environ.get(NVML_CHECK) == "1"


# Ten CNN training steps at batch 64 in a fresh process, counting minor page faults.
FAULT_COUNTING_STEPS = """
import resource, torch
from torch.nn import functional as F
from engines.core import reuse_freed_memory
from engines.spec import RunSpec
from engines.torch_engine import build_model, make_optimizer
reuse_freed_memory()
torch.manual_seed(0)
model = build_model("cnn", 0.25)
optimizer = make_optimizer(model, RunSpec("torch", "cnn"))
x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
def step():
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not runs_on_glibc(), reason="a glibc malloc setting")
def test_torch_training_steps_reuse_their_memory_instead_of_page_faulting() -> None:
    """Without ``reuse_freed_memory`` these ten steps page-faulted 26,000-42,000 times here
    (fresh pages for every activation buffer, zeroed by the kernel); with it, 1,500-3,500."""
    child = subprocess.run(
        [sys.executable, "-c", FAULT_COUNTING_STEPS],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert int(child.stdout.split()[-1]) < 10_000


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_same_seed_gives_the_same_run(framework: str, mnist: Mnist) -> None:
    """A run can be reproduced from its spec: same seed, same curves and test predictions.
    With shifts and rotations on, so that the augmented images and the dropout masks are
    covered too."""
    first, again = (
        train_tiny(framework, mnist, epochs=3, augment_shift=1, augment_rotate=10, dropout=0.3)
        for _ in range(2)
    )
    assert [s.train_loss for s in first.result.history] == [
        s.train_loss for s in again.result.history
    ]
    assert [s.val_loss for s in first.result.history] == [s.val_loss for s in again.result.history]
    np.testing.assert_array_equal(first.result.test_probabilities, again.result.test_probabilities)


# --- early stopping ----------------------------------------------------------------------
@pytest.fixture(scope="module", params=FRAMEWORKS)
def early_stopped(request: pytest.FixtureRequest, mnist: Mnist) -> TinyRun:
    return train_tiny(request.param, mnist, epochs=30, es_patience=2, scheduler="none")


@pytest.mark.parametrize("framework", ["torch", "lightning"])
def test_epoch_seconds_include_building_the_epochs_augmented_images(
    framework: str, mnist: Mnist, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lightning builds them before its epoch hooks; a clock started there missed them."""
    engine = import_engine(framework)
    building = 0.5

    def slow_epoch_images(images: np.ndarray, spec: RunSpec, epoch: int) -> np.ndarray:
        time.sleep(building)
        return images

    monkeypatch.setattr(engine, "epoch_images", slow_epoch_images)
    run = train_tiny(framework, mnist, epochs=3, augment_shift=1, es_patience=10)

    assert [stats.epoch_seconds >= building for stats in run.result.history] == [True] * 3


def nan_validation_losses(framework: str, from_epoch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the engine's validation loss NaN from ``from_epoch`` on (a diverged run)."""
    engine = import_engine(framework)
    if framework == "torch":
        epochs = itertools.count(1)
        evaluate = engine.evaluate

        def evaluate_nan(model, x, y) -> tuple[float, float]:
            loss, accuracy = evaluate(model, x, y)
            return (math.nan if next(epochs) >= from_epoch else loss), accuracy

        monkeypatch.setattr(engine, "evaluate", evaluate_nan)
        return
    from torch.nn import functional as F

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        if self.current_epoch + 1 >= from_epoch:
            loss = loss * math.nan
        accuracy = (logits.argmax(1) == y).float().mean()
        metrics = {"val_loss": loss, "val_accuracy": accuracy}
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=len(y))

    monkeypatch.setattr(engine.DigitClassifier, "validation_step", validation_step)


@pytest.mark.parametrize(
    ("from_epoch", "best_and_stopped"),
    [(1, (2, 2)), (3, (2, 4))],  # all NaN: no best epoch, so the last weights are kept
)
def test_a_nan_validation_loss_counts_as_an_epoch_without_improvement_in_both_torch_engines(
    mnist: Mnist, monkeypatch: pytest.MonkeyPatch, from_epoch: int, best_and_stopped: tuple
) -> None:
    """Lightning's EarlyStopping stopped at the first NaN and its checkpoint kept epoch 1 of
    an all-NaN run; plain PyTorch (and Keras) wait out the patience and keep the last weights."""
    epochs = {}
    for framework in ("torch", "lightning"):
        nan_validation_losses(framework, from_epoch, monkeypatch)
        run = train_tiny(framework, mnist, epochs=8, es_patience=2, scheduler="none")
        epochs[framework] = (run.result.best_epoch, run.result.stopped_epoch)

    assert epochs["torch"] == epochs["lightning"] == best_and_stopped


def test_on_epoch_reports_every_epoch_in_order(early_stopped: TinyRun) -> None:
    history = early_stopped.result.history
    assert early_stopped.reported == history
    assert [stats.epoch for stats in history] == list(range(1, len(history) + 1))
    assert all(stats.epoch_seconds > 0 for stats in history)


def test_training_stops_patience_epochs_after_the_best_val_loss(early_stopped: TinyRun) -> None:
    spec, result = early_stopped.spec, early_stopped.result
    val_losses = [stats.val_loss for stats in result.history]
    assert result.best_epoch == int(np.argmin(val_losses)) + 1
    assert result.stopped_epoch == len(result.history) < spec.epochs
    assert result.stopped_epoch == result.best_epoch + spec.es_patience


def test_saved_model_has_the_best_epochs_weights_not_the_last(
    early_stopped: TinyRun, tmp_path: Path
) -> None:
    run = early_stopped
    probabilities = saved_and_reloaded_probabilities(run, run.data.x_val, tmp_path)

    val_loss = log_loss(probabilities, run.data.y_val)
    best = run.result.history[run.result.best_epoch - 1].val_loss
    last = run.result.history[-1].val_loss
    assert val_loss == pytest.approx(best, rel=1e-3)
    assert val_loss != pytest.approx(last, rel=1e-3)


def test_saved_model_reproduces_the_reported_test_results(
    early_stopped: TinyRun, tmp_path: Path
) -> None:
    run = early_stopped
    probabilities = saved_and_reloaded_probabilities(run, run.data.x_test, tmp_path)

    assert probabilities.shape == run.result.test_probabilities.shape == (200, 10)
    np.testing.assert_allclose(probabilities, run.result.test_probabilities, atol=1e-5)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == run.data.y_test))
    assert accuracy == pytest.approx(run.result.test_accuracy, abs=1e-6)
    assert run.result.test_loss == pytest.approx(log_loss(probabilities, run.data.y_test), rel=1e-3)
    assert accuracy > 0.7  # 300 images are plenty to get far above chance (10 %)


# --- label smoothing ---------------------------------------------------------------------
SMOOTHING = 0.5


def smoothed_target_entropy(smoothing: float, classes: int = 10) -> float:
    """The lowest value the smoothed objective can take: the entropy of its targets (1.68
    for 0.5; the plain cross-entropy of a model that has learned anything is far lower)."""
    high, low = 1 - smoothing + smoothing / classes, smoothing / classes
    return -(high * math.log(high) + (classes - 1) * low * math.log(low))


@pytest.fixture(scope="module", params=FRAMEWORKS)
def smoothed(request: pytest.FixtureRequest, mnist: Mnist) -> TinyRun:
    return train_tiny(request.param, mnist, epochs=4, scheduler="none", label_smoothing=SMOOTHING)


def test_label_smoothing_makes_the_training_loss_the_smoothed_objective(
    smoothed: TinyRun,
) -> None:
    floor = smoothed_target_entropy(SMOOTHING)
    assert all(stats.train_loss >= floor - 1e-4 for stats in smoothed.result.history)


def test_label_smoothing_leaves_validation_and_test_losses_plain_cross_entropy(
    smoothed: TinyRun, tmp_path: Path
) -> None:
    run = smoothed
    probabilities = saved_and_reloaded_probabilities(run, run.data.x_val, tmp_path)

    val_loss = log_loss(probabilities, run.data.y_val)
    assert val_loss == pytest.approx(
        run.result.history[run.result.best_epoch - 1].val_loss, rel=1e-3
    )
    assert val_loss < smoothed_target_entropy(SMOOTHING)  # the smoothed loss cannot be this low
    test_loss = log_loss(run.result.test_probabilities, run.data.y_test)
    assert run.result.test_loss == pytest.approx(test_loss, rel=1e-3)


# --- learning-rate schedules -------------------------------------------------------------
def expected_schedule(spec: RunSpec, epochs: int) -> list[float]:
    """The LR used in each epoch 1..epochs, written out from the schedule's definition."""
    if spec.scheduler == "step":
        return [
            spec.lr * spec.step_gamma ** ((e - 1) // spec.step_size) for e in range(1, epochs + 1)
        ]
    if spec.scheduler == "cosine":
        return [
            spec.lr * (1 + math.cos(math.pi * (e - 1) / spec.epochs)) / 2
            for e in range(1, epochs + 1)
        ]
    return [spec.lr] * epochs


@pytest.mark.parametrize("scheduler", ["step", "cosine", "none"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_lr_column_follows_the_configured_schedule(
    framework: str, scheduler: str, mnist: Mnist
) -> None:
    run = train_tiny(
        framework,
        mnist,
        epochs=4,
        es_patience=10,
        scheduler=scheduler,
        step_size=1,
        step_gamma=0.5,
    )
    assert len(run.result.history) == 4
    assert lr_column(run) == pytest.approx(expected_schedule(run.spec, 4), rel=1e-5)


def expected_plateau_lrs(spec: RunSpec, val_losses: list[float]) -> list[float]:
    """ReduceLROnPlateau as the spec defines it: after more than ``plateau_patience``
    consecutive epochs without a new lowest val loss, multiply the LR by ``plateau_factor``
    (from the next epoch on) and start counting again."""
    lr, best, bad_epochs, lrs = spec.lr, math.inf, 0, []
    for loss in val_losses:
        lrs.append(lr)
        if loss < best:
            best, bad_epochs = loss, 0
            continue
        bad_epochs += 1
        if bad_epochs > spec.plateau_patience:
            lr, bad_epochs = lr * spec.plateau_factor, 0
    return lrs


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_plateau_lowers_lr_only_after_patience_epochs_without_improvement(
    framework: str, mnist: Mnist
) -> None:
    run = train_tiny(
        framework,
        mnist,
        epochs=15,  # long enough for every engine to hit a plateau
        es_patience=15,
        scheduler="plateau",
        plateau_patience=1,
        plateau_factor=0.5,
    )
    val_losses = [stats.val_loss for stats in run.result.history]
    lrs = lr_column(run)
    assert lrs == pytest.approx(expected_plateau_lrs(run.spec, val_losses), rel=1e-5)
    assert min(lrs) < run.spec.lr  # the tiny run did hit a plateau, so the rule was exercised


def test_check_images_names_the_wrong_shape() -> None:
    assert check_images(np.zeros((3, 28, 28), np.uint8)).shape == (3, 28, 28)
    for wrong in (np.zeros((28, 28)), np.zeros((2, 28, 28, 1)), np.zeros((2, 32, 32))):
        with pytest.raises(ValueError, match=r"expected shape \(N, 28, 28\), got"):
            check_images(wrong)
