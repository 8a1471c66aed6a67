"""The benchmark's measurements, each run in a child process of ``python -m engines bench``.

The parent writes a :class:`Task` as JSON and starts ``python -c "from engines.bench_child
import child_main; child_main()" task.json result.json``; the child imports one framework,
measures, and writes its rows (one per timed epoch, latency sample, …) as JSON. One
process per measurement keeps the frameworks apart (TensorFlow never meets torch) and makes
each peak-memory figure that measurement's own.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.spec import ARCHS, FRAMEWORKS

BASE_SEED = 42  # RunSpec's default seed; seed k of a benchmark is BASE_SEED + k
FULL_TRAIN_SIZE = 55_000  # training images with the default 5,000-image validation split


@dataclass
class Task:
    """One measurement, run in its own process. ``kind`` names a ``measure_*`` function."""

    kind: str  # speed | reference | training | inference | dashboard
    framework: str = ""
    arch: str = ""
    seed: int = BASE_SEED
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        pair = f" {self.framework}/{self.arch}" if self.framework else ""
        seed = f" seed {self.seed}" if self.kind == "training" else ""
        return f"{self.kind}{pair}{seed}"


# --- entry point -------------------------------------------------------------------------
def child_main() -> None:
    """Entry point of a child: run one task, write ``{"rows": …, "env": …}`` as JSON."""
    task_file, result_file = sys.argv[1:3]
    task = Task(**json.loads(Path(task_file).read_text()))
    measure = MEASUREMENTS[task.kind]
    rows = measure(task)
    env = framework_env(task.framework)
    Path(result_file).write_text(json.dumps({"rows": rows, "env": env}))


# --- measurements ------------------------------------------------------------------------
def row(metric: str, value: float, unit: str, repeat: int = 0, warmup: bool = False) -> dict:
    return {
        "metric": metric,
        "value": float(value),
        "unit": unit,
        "repeat": repeat,
        "warmup": warmup,
    }


def load_engine(framework: str):
    """The engine module; Keras alone in its process (no torch loaded beside TensorFlow, so
    its memory figure is its own), the torch side through :func:`engines.core.import_engine`."""
    import importlib

    if framework == "keras":
        return importlib.import_module("engines.keras_engine")
    from engines.core import import_engine

    return import_engine(framework)


def load_split(options: dict[str, Any], seed: int = BASE_SEED):
    from engines.data import load_mnist, split

    return split(
        load_mnist(),
        val_size=options["val_size"],
        seed=seed,
        train_limit=options["train_limit"],
        test_limit=options["test_limit"],
    )


def measure_speed(task: Task) -> list[dict]:
    """The engine's own ``train`` with early stopping off; each epoch's seconds as a row.
    ``options["batch_size"]``: the batch to time (``None``: the default spec's)."""
    from engines.spec import RunSpec

    engine = load_engine(task.framework)
    options = task.options
    data = load_split(options, task.seed)
    spec = RunSpec(
        task.framework,
        task.arch,
        epochs=options["warmup_epochs"] + options["timed_epochs"],
        batch_size=options.get("batch_size"),
        es_patience=1000,  # never stop early: every epoch is a measurement
        seed=task.seed,
        train_limit=options["train_limit"],
        val_size=options["val_size"],
        test_limit=1000,  # the final test pass is not timed; keep it short
    )
    rows: list[dict] = []

    def on_epoch(stats) -> None:
        warmup = stats.epoch <= options["warmup_epochs"]
        rows.append(row("epoch_seconds", stats.epoch_seconds, "s", stats.epoch, warmup))
        rows.append(row("val_accuracy", stats.val_accuracy, "fraction", stats.epoch, warmup))

    result = engine.train(spec, data, on_epoch)
    rows.append(row("trainable_params", result.trainable_params, "count"))
    rows.append(row("batch_size", spec.batch_size, "images"))
    rows.append(row("n_train", len(data.x_train), "images"))
    rows.append(row("peak_rss_mb", peak_rss_mb(), "MB"))
    return rows


def measure_reference(task: Task) -> list[dict]:
    from engines.reference import train_reference

    options = task.options
    data = load_split(options, task.seed)
    rows: list[dict] = []

    def on_epoch(seconds: float, val_accuracy: float) -> None:
        epoch = len(rows) // 2 + 1
        warmup = epoch <= options["warmup_epochs"]
        rows.append(row("epoch_seconds", seconds, "s", epoch, warmup))
        rows.append(row("val_accuracy", val_accuracy, "fraction", epoch, warmup))

    epochs = options["warmup_epochs"] + options["timed_epochs"]
    params = train_reference(task.framework, task.arch, data, epochs, on_epoch)
    rows.append(row("trainable_params", params, "count"))
    rows.append(row("n_train", len(data.x_train), "images"))
    rows.append(row("peak_rss_mb", peak_rss_mb(), "MB"))
    return rows


def measure_training(task: Task) -> list[dict]:
    """A default-spec run (early stopping on). Each epoch's validation accuracy and the wall
    seconds since ``train`` was called give the time to accuracy; the test accuracy is the
    accuracy figure. The first seed's model is saved for the inference measurement."""
    from engines.spec import RunSpec

    engine = load_engine(task.framework)
    options = task.options
    data = load_split(options, task.seed)
    spec = RunSpec(
        task.framework,
        task.arch,
        seed=task.seed,
        train_limit=options["train_limit"],
        val_size=options["val_size"],
        test_limit=options["test_limit"],
    )
    if options["max_epochs"] is not None:
        spec = spec.replace(epochs=min(spec.epochs, options["max_epochs"]))
    rows: list[dict] = []
    started = time.perf_counter()

    def on_epoch(stats) -> None:
        elapsed = time.perf_counter() - started
        rows.append(row("epoch_seconds", stats.epoch_seconds, "s", stats.epoch))
        rows.append(row("val_accuracy", stats.val_accuracy, "fraction", stats.epoch))
        rows.append(row("elapsed_seconds", elapsed, "s", stats.epoch))

    result = engine.train(spec, data, on_epoch)
    rows.append(row("wall_seconds", time.perf_counter() - started, "s"))
    rows.append(row("test_accuracy", result.test_accuracy, "fraction"))
    rows.append(row("epochs_run", result.stopped_epoch, "epochs"))
    rows.append(row("max_epochs", spec.epochs, "epochs"))
    rows.append(row("best_epoch", result.best_epoch, "epochs"))
    rows.append(row("n_train", len(data.x_train), "images"))
    rows.append(row("peak_rss_mb", peak_rss_mb(), "MB"))
    if options.get("model_dir"):
        Path(options["model_dir"]).mkdir(parents=True, exist_ok=True)
        engine.save_model(result, options["model_dir"])
    return rows


def measure_inference(task: Task) -> list[dict]:
    """Warm single-image latency of ``load_predictor(...).predict_proba``. Uses the model of
    the accuracy run; without one (``--parts inference`` alone) a tiny model stands in —
    latency does not depend on the weights."""
    from engines import store
    from engines.data import load_mnist

    engine = load_engine(task.framework)
    directory = Path(task.options["model_dir"])
    trained = store.model_path(directory) is not None
    if not trained:
        train_stand_in(engine, task, directory)
    started = time.perf_counter()
    predictor = engine.load_predictor(directory)
    load_seconds = time.perf_counter() - started
    image = load_mnist().x_test[:1]
    for _ in range(10):
        predictor.predict_proba(image)
    rows = [row("load_seconds", load_seconds, "s")]
    if not trained:
        rows.append(row("stand_in_model", 1, "flag"))
    for rep in range(1, task.options["reps"] + 1):
        started = time.perf_counter()
        predictor.predict_proba(image)
        rows.append(row("latency_ms", (time.perf_counter() - started) * 1000, "ms", rep))
    return rows


def train_stand_in(engine, task: Task, directory: Path) -> None:
    from engines.spec import RunSpec

    options = {"val_size": 500, "train_limit": 1000, "test_limit": 100}
    spec = RunSpec(task.framework, task.arch, epochs=1, **options)
    result = engine.train(spec, load_split(options), lambda stats: None)
    directory.mkdir(parents=True, exist_ok=True)
    engine.save_model(result, directory)


def measure_dashboard(task: Task) -> list[dict]:
    """``engines.load_runs`` (what the leaderboard reads) on a synthetic store."""
    from engines import load_runs

    runs, repeats = task.options["runs"], task.options["repeats"]
    with tempfile.TemporaryDirectory(prefix="digit-lab-bench-store-") as root:
        build_synthetic_store(Path(root), runs)
        rows = [row("store_runs", runs, "runs")]
        for rep in range(1, repeats + 1):
            started = time.perf_counter()
            frame = load_runs(root)
            rows.append(row("load_runs_seconds", time.perf_counter() - started, "s", rep))
            if len(frame) != runs:
                raise RuntimeError(f"load_runs returned {len(frame)} runs, expected {runs}")
    return rows


def build_synthetic_store(root: Path, runs: int) -> None:
    """``runs`` finished runs (run.json + a 10-epoch history each), all pairs in turn."""
    from engines import store
    from engines.spec import RunSpec

    pairs = [(f, a) for f in FRAMEWORKS for a in ARCHS]
    rng = np.random.default_rng(0)
    for number in range(runs):
        framework, arch = pairs[number % len(pairs)]
        run_dir = store.create_run(RunSpec(framework, arch, seed=number), root, status="queued")
        accuracy = float(rng.uniform(0.97, 0.995))
        run = store.update_run(
            run_dir,
            status="done",
            started_at=store.now_iso(),
            finished_at=store.now_iso(),
            wall_seconds=100.0,
            seconds_per_epoch=10.0,
            best_epoch=8,
            stopped_epoch=10,
            test_loss=0.05,
            test_accuracy=accuracy,
            trainable_params=421_834 if arch == "cnn" else 109_770,
            versions={"python": platform.python_version()},
            host={"cpu": "synthetic", "cores": 2},
        )
        history = [
            {
                "epoch": e,
                "train_loss": 1 / e,
                "train_accuracy": accuracy,
                "val_loss": 1 / e,
                "val_accuracy": accuracy,
                "lr": 1e-3,
                "epoch_seconds": 10.0,
            }
            for e in range(1, 11)
        ]
        store.write_history(run_dir, run, history)


MEASUREMENTS = {
    "speed": measure_speed,
    "default_speed": measure_speed,
    "reference": measure_reference,
    "training": measure_training,
    "inference": measure_inference,
    "dashboard": measure_dashboard,
}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def framework_env(framework: str) -> dict[str, Any]:
    """Thread settings of the framework this child used (read after the measurement)."""
    env: dict[str, Any] = {"framework": framework}
    if framework in ("torch", "lightning"):
        import torch

        env["torch_threads"] = torch.get_num_threads()
        env["torch_interop_threads"] = torch.get_num_interop_threads()
    elif framework == "keras":
        import tensorflow as tf

        env["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        env["tf_inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
    return env
