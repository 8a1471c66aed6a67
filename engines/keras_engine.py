"""The Keras engine: ``Sequential`` models trained with ``fit`` and Keras's own callbacks.

Import it through :func:`engines.core.import_engine` (``import_engine("keras")``) in any
process that may also use PyTorch: TensorFlow must be imported after the torch side.

Where Keras and PyTorch defaults differ, this module follows :mod:`engines.core` so that the
three engines train the same model the same way:

* BatchNormalization momentum is ``1 - core.BN_MOMENTUM`` (Keras keeps the old value's
  weight, PyTorch the new batch's), epsilon ``core.BN_EPSILON``; Adam epsilon
  ``core.ADAM_EPSILON``.
* ``ReduceLROnPlateau`` gets ``patience + 1``: PyTorch lowers the rate after *more than*
  ``patience`` bad epochs, Keras after ``patience`` of them.
* The weights kept are those of the lowest validation loss (:class:`BestWeights`), as the
  other engines' checkpoints do. ``EarlyStopping(restore_best_weights=True)`` would instead
  keep the last epoch that beat the best by ``min_delta`` (the same thing when it is 0).
* With label smoothing, Keras's own ``val_loss`` would be the smoothed objective; the other
  engines report and monitor plain cross-entropy on the validation set, so here a
  ``cross_entropy`` metric does (:func:`val_loss_key`).
"""

from __future__ import annotations

import itertools
import math
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# 3 hides TensorFlow's C++ errors too: on a machine without a GPU it logs "failed call to
# cuInit" as an error on every start, which reads as a failure in a job's log. Real failures
# still reach Python as exceptions; set TF_CPP_MIN_LOG_LEVEL=0 to see everything.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402  (the environment above must be set first)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402  (Keras's backend here: input pipelines are tf.data)

from engines import core, store  # noqa: E402
from engines.augment import BuiltAhead, epoch_images  # noqa: E402
from engines.core import (  # noqa: E402
    EVAL_BATCH_SIZE,
    EpochStats,
    OnEpoch,
    RunResult,
    check_images,
    leaves_one_over,
    training_batch_count,
)
from engines.data import Split, normalize  # noqa: E402
from engines.spec import RunSpec  # noqa: E402

MODEL_FILE = "model.keras"
NUM_CLASSES = 10
INPUT_SHAPE = (28, 28, 1)
SMALL_BATCH = 256  # up to this many images are predicted in one direct call
# Training steps per call into the compiled graph. Our callbacks act only at epoch ends, so
# running many steps per call loses nothing and saves Python overhead per step: a DNN epoch
# 2.1-2.5 -> 1.6-1.7 s at batch 128 here. A CNN step takes ~45 ms, so there it would save
# next to nothing and cost the overlap of epochs (see training_data; BENCHMARKS.md).
STEPS_PER_EXECUTION = {"dnn": 32, "cnn": 1}


# --- models ------------------------------------------------------------------------------
def _dense(units: int, activation: str) -> keras.layers.Dense:
    return keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
    )


def _conv(filters: int) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(
        filters,
        kernel_size=3,
        padding="same",
        activation="relu",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
    )


def _batch_norm() -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(momentum=1.0 - core.BN_MOMENTUM, epsilon=core.BN_EPSILON)


def build_dnn(dropout: float) -> keras.Sequential:
    """Flatten → [Dense 128 → ReLU → BN → Dropout] → [Dense 64 → ReLU → BN → Dropout] → 10."""
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            keras.layers.Flatten(),
            _dense(128, "relu"),
            _batch_norm(),
            keras.layers.Dropout(dropout),
            _dense(64, "relu"),
            _batch_norm(),
            keras.layers.Dropout(dropout),
            _dense(NUM_CLASSES, "softmax"),
        ],
        name="dnn",
    )


def build_cnn(dropout: float) -> keras.Sequential:
    """Two [Conv 3×3 → ReLU → BN → MaxPool 2 → Dropout] blocks → Dense 128 → Dropout → 10."""
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            _conv(32),
            _batch_norm(),
            keras.layers.MaxPooling2D(2),
            keras.layers.Dropout(dropout),
            _conv(64),
            _batch_norm(),
            keras.layers.MaxPooling2D(2),
            keras.layers.Dropout(dropout),
            keras.layers.Flatten(),
            _dense(128, "relu"),
            keras.layers.Dropout(dropout),
            _dense(NUM_CLASSES, "softmax"),
        ],
        name="cnn",
    )


BUILDERS = {"dnn": build_dnn, "cnn": build_cnn}


def build_model(arch: str, dropout: float) -> keras.Sequential:
    if arch not in BUILDERS:
        raise ValueError(f"arch: must be one of {'|'.join(BUILDERS)}, got {arch!r}")
    return BUILDERS[arch](dropout)


def count_trainable(model: keras.Model) -> int:
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


def trainable_params(arch: str) -> int:
    """Number of trainable parameters of ``arch`` as this engine builds it."""
    return count_trainable(build_model(arch, dropout=0.0))  # dropout has no weights


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> normalised float32 (N, 28, 28, 1), channels last as Keras wants."""
    return normalize(images)[..., None]


def epoch_batches(
    spec: RunSpec, images: np.ndarray, labels: np.ndarray, n_epochs: int
) -> tf.data.Dataset:
    """Training batches built per epoch: ``n_epochs`` epochs of them in one ``tf.data``
    dataset (the number of epochs ``fit`` draws from it before iterating it afresh). Used for
    augmented specs, and for any whose images would leave a lone one in a last batch.

    Each epoch's images come from :func:`engines.augment.epoch_images` (the same images
    the other engines see), visited in a fresh seeded order. One Python call per epoch hands
    over the epoch's array and ``tf.data`` cuts it into batches inside the graph; a
    ``PyDataset`` makes one Python call per batch, which cost more than the DNN's training
    step here. The arrays are built an epoch ahead (:class:`engines.augment.BuiltAhead`).
    """
    rng = np.random.default_rng(spec.seed)
    epochs_started = itertools.count(1)

    def epoch_arrays(epoch: int) -> tuple[np.ndarray, np.ndarray]:
        order = rng.permutation(len(images))
        augmented = epoch_images(images, spec, epoch)
        return to_model_input(augmented[order]), labels[order]

    arrays_ahead = BuiltAhead(epoch_arrays, spec.epochs)

    def next_epoch_arrays() -> tuple[np.ndarray, np.ndarray]:
        return arrays_ahead(next(epochs_started))

    def load_epoch(_):
        x, y = tf.numpy_function(next_epoch_arrays, [], (tf.float32, tf.as_dtype(labels.dtype)))
        return tf.ensure_shape(x, (len(images), *INPUT_SHAPE)), tf.ensure_shape(y, (len(images),))

    epochs = tf.data.Dataset.range(n_epochs).map(load_epoch)
    batches = epochs.flat_map(
        lambda x, y: batched(tf.data.Dataset.from_tensor_slices((x, y)), len(images), spec)
    )
    # flat_map hides the length; stated, Keras knows where the last batch is.
    n_batches = n_epochs * training_batch_count(len(images), spec.batch_size)
    return batches.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(1)


def batched(epoch: tf.data.Dataset, n: int, spec: RunSpec) -> tf.data.Dataset:
    """One epoch's ``n`` images in batches; a lone image left over joins the batch before
    it, as in the PyTorch engines (:func:`engines.core.leaves_one_over`)."""
    if not leaves_one_over(n, spec.batch_size):
        return epoch.batch(spec.batch_size)
    head = n - spec.batch_size - 1
    return epoch.take(head).batch(spec.batch_size).concatenate(epoch.skip(head).batch(n - head))


def training_data(spec: RunSpec, data: Split) -> dict:
    """``fit`` arguments for the training images: plain arrays, or per-epoch images through
    ``tf.data`` when the spec asks for augmentation or the images would leave a lone one in
    a last batch (``fit`` on arrays would train that batch of one).

    With one training step per graph call the augmented images are one stream over all
    epochs. With several steps per call they come one epoch at a time: Keras runs whole
    calls, which on a stream take the next epoch's first batches into this epoch and leave
    the last one short.
    """
    if not spec.augmented and not leaves_one_over(len(data.x_train), spec.batch_size):
        return {
            "x": to_model_input(data.x_train),
            "y": data.y_train,
            "batch_size": spec.batch_size,
            "shuffle": True,
        }
    shuffle = {"shuffle": False}  # each epoch's order is drawn in epoch_batches
    if STEPS_PER_EXECUTION[spec.arch] > 1:
        one_epoch = epoch_batches(spec, data.x_train, data.y_train, n_epochs=1)
        return {"x": one_epoch, **shuffle}
    stream = epoch_batches(spec, data.x_train, data.y_train, spec.epochs)
    steps_per_epoch = training_batch_count(len(data.x_train), spec.batch_size)
    return {"x": stream, "steps_per_epoch": steps_per_epoch, **shuffle}


# --- callbacks ---------------------------------------------------------------------------
def scheduler_callbacks(spec: RunSpec) -> list[keras.callbacks.Callback]:
    """The spec's learning-rate schedule as Keras callbacks (epochs are 0-based here)."""
    if spec.scheduler == "plateau":
        return [
            keras.callbacks.ReduceLROnPlateau(
                monitor=val_loss_key(spec),
                factor=spec.plateau_factor,
                patience=spec.plateau_patience + 1,  # see the module docstring
                min_delta=0.0,  # any decrease counts as an improvement, as in PyTorch
                cooldown=0,
                min_lr=0.0,
            )
        ]
    if spec.scheduler == "step":
        return [keras.callbacks.LearningRateScheduler(lambda epoch, _lr: step_lr(spec, epoch))]
    if spec.scheduler == "cosine":
        return [keras.callbacks.LearningRateScheduler(lambda epoch, _lr: cosine_lr(spec, epoch))]
    return []


def step_lr(spec: RunSpec, epoch: int) -> float:
    """PyTorch ``StepLR``: multiply by gamma every ``step_size`` epochs."""
    return spec.lr * spec.step_gamma ** (epoch // spec.step_size)


def cosine_lr(spec: RunSpec, epoch: int) -> float:
    """PyTorch ``CosineAnnealingLR`` with ``T_max = epochs`` and ``eta_min = 0``."""
    return spec.lr * (1.0 + math.cos(math.pi * epoch / spec.epochs)) / 2.0


def current_lr(optimizer: keras.optimizers.Optimizer) -> float:
    """The optimizer's rate, as the shortest decimal of its float32 value (0.001, not
    0.0010000000474974513), so the history matches the other engines' plain floats."""
    return float(str(np.float32(float(optimizer.learning_rate))))


class EpochRecorder(keras.callbacks.Callback):
    """Turns each epoch's logs into :class:`EpochStats` and hands them to ``on_epoch``.

    It must come after the scheduler callbacks in the list: Keras calls callbacks in order,
    so by our ``on_epoch_begin`` the rate for this epoch has been set.
    """

    def __init__(self, on_epoch: OnEpoch | None, val_loss: str = "val_loss") -> None:
        super().__init__()
        self.on_epoch = on_epoch
        self.val_loss = val_loss
        self.history: list[EpochStats] = []
        self._lr = float("nan")
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._lr = current_lr(self.model.optimizer)
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        stats = EpochStats(
            epoch=epoch + 1,
            train_loss=float(logs["loss"]),
            train_accuracy=float(logs["accuracy"]),
            val_loss=float(logs[self.val_loss]),
            val_accuracy=float(logs["val_accuracy"]),
            lr=self._lr,
            epoch_seconds=time.perf_counter() - self._started,
        )
        self.history.append(stats)
        if self.on_epoch is not None:
            self.on_epoch(stats)


class BestWeights(keras.callbacks.Callback):
    """Remembers the weights of the epoch with the lowest val loss; restores them at the end.

    Works whether training stopped early or ran all its epochs.
    """

    def __init__(self, val_loss: str = "val_loss") -> None:
        super().__init__()
        self.val_loss = val_loss

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.best_loss = math.inf
        self.best_epoch = 0  # 1-based; 0 until an epoch has a finite val loss
        self.best_weights: list | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        val_loss = float((logs or {})[self.val_loss])
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch = val_loss, epoch + 1
            self.best_weights = self.model.get_weights()  # includes BatchNorm statistics

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


# --- training ----------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="digit_lab")
class SparseSmoothedCrossentropy(keras.losses.Loss):
    """``CategoricalCrossentropy(label_smoothing=...)`` on integer labels (Keras's sparse
    cross-entropy has no smoothing). The targets become ``one_hot * (1 - s) + s / 10``, as
    in PyTorch's ``cross_entropy(label_smoothing=s)``."""

    def __init__(self, label_smoothing: float, name: str = "smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        targets = keras.ops.one_hot(labels, NUM_CLASSES)
        return keras.losses.categorical_crossentropy(
            targets, y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def loss_key(spec: RunSpec) -> str:
    """The log entry holding the plain cross-entropy (see the module docstring): the loss
    itself, or with label smoothing the ``cross_entropy`` metric."""
    return "cross_entropy" if spec.label_smoothing else "loss"


def val_loss_key(spec: RunSpec) -> str:
    """:func:`loss_key` on the validation set (what early stopping and the LR watch)."""
    return f"val_{loss_key(spec)}"


def compile_model(model: keras.Model, spec: RunSpec) -> None:
    if spec.label_smoothing:
        loss = SparseSmoothedCrossentropy(spec.label_smoothing)
        metrics = ["accuracy", keras.metrics.SparseCategoricalCrossentropy(name="cross_entropy")]
    else:
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=spec.lr, epsilon=core.ADAM_EPSILON),
        loss=loss,
        metrics=metrics,
        jit_compile=False,  # XLA did not pay off on CPU for models this small
        steps_per_execution=STEPS_PER_EXECUTION[spec.arch],
    )


def train(spec: RunSpec, data: Split, on_epoch: OnEpoch | None = None) -> RunResult:
    """Fit with early stopping on the validation loss; the returned model has the weights of
    the epoch with the lowest validation loss."""
    keras.utils.set_random_seed(spec.seed)
    model = build_model(spec.arch, spec.dropout)
    compile_model(model, spec)

    val_loss = val_loss_key(spec)
    early_stopping = keras.callbacks.EarlyStopping(
        monitor=val_loss,
        patience=spec.es_patience,
        min_delta=spec.es_min_delta,
        restore_best_weights=False,  # BestWeights does it (see the module docstring)
    )
    best = BestWeights(val_loss)
    recorder = EpochRecorder(on_epoch, val_loss)
    model.fit(
        **training_data(spec, data),
        validation_data=(to_model_input(data.x_val), data.y_val),
        validation_batch_size=EVAL_BATCH_SIZE,
        epochs=spec.epochs,
        verbose=0,
        callbacks=[*scheduler_callbacks(spec), recorder, best, early_stopping],
    )

    x_test = to_model_input(data.x_test)
    test = model.evaluate(
        x_test, data.y_test, batch_size=EVAL_BATCH_SIZE, verbose=0, return_dict=True
    )
    test_loss = test[loss_key(spec)]
    probabilities = model.predict(x_test, batch_size=EVAL_BATCH_SIZE, verbose=0)
    return RunResult(
        history=recorder.history,
        best_epoch=best.best_epoch or len(recorder.history),
        stopped_epoch=len(recorder.history),
        test_loss=float(test_loss),
        test_accuracy=float(test["accuracy"]),
        test_probabilities=np.asarray(probabilities, dtype=np.float32),
        trainable_params=count_trainable(model),
        model=model,
    )


# --- saving and predicting ---------------------------------------------------------------
def save_model(result: RunResult, run_dir: str | Path) -> Path:
    """Write ``model.keras`` atomically; returns its path."""
    target = Path(run_dir) / MODEL_FILE
    store.atomic_write(target, result.model.save, suffix=".keras")
    return target


class KerasPredictor:
    """``predict_proba`` for a saved Keras model."""

    def __init__(self, model: keras.Model) -> None:
        self.model = model

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28) MNIST-like images -> float32 (N, 10) probabilities."""
        images = check_images(images)
        x = to_model_input(images)
        if len(x) <= SMALL_BATCH:
            # A direct compiled call: much lower latency than predict() for a drawn digit.
            probabilities = self.model.predict_on_batch(x)
        else:
            probabilities = self.model.predict(x, batch_size=EVAL_BATCH_SIZE, verbose=0)
        return np.asarray(probabilities, dtype=np.float32)


def load_predictor(run_dir: str | Path) -> KerasPredictor:
    model = keras.models.load_model(Path(run_dir) / MODEL_FILE, compile=False)
    predictor = KerasPredictor(model)
    warm_up(predictor)
    return predictor


def warm_up(predictor: KerasPredictor) -> None:
    """Trace the prediction function now rather than on the user's first digit.

    The second batch size makes TensorFlow retrace once for any batch size, so later calls
    with a new N do not pay for tracing either.
    """
    for n in (1, 2):
        predictor.predict_proba(np.zeros((n, 28, 28), dtype=np.uint8))
