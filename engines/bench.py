"""``python -m engines bench``: speed and accuracy of every pair, next to the reference pipelines.

What it measures (issue #4), each in its own child process so frameworks never share one
(and TensorFlow never meets torch), each figure a median of several measurements:

* ``speed``     Digit Lab's engine per pair: seconds per epoch (median of ``--epochs`` timed
                epochs after a warm-up epoch, early stopping off), images/s, peak memory;
                at the reference's batch size (for the ratio) and, where it differs, at the
                default spec's batch size (for the absolute epoch targets).
* ``reference`` the tutorial-style pipelines of :mod:`engines.reference`, timed the same way;
                the speed table shows engine vs reference as a ratio from this invocation.
* ``accuracy``  full training with the default spec (early stopping on), ``--seeds`` seeds
                per pair: test accuracy mean ± std and the spread between frameworks.
* ``tta``       time to accuracy: wall seconds from the start of ``train()`` until the
                validation accuracy first reaches 99.0 % (CNN) / 98.0 % (DNN). Read from the
                same training runs as ``accuracy`` (asking for either runs them).
* ``inference`` one 28×28 image through each trained model's ``predict_proba``, warm:
                p50/p95 latency.
* ``dashboard`` ``engines.load_runs()`` on a synthetic store of 500 runs.

Raw numbers go to ``results/bench/<timestamp>.parquet`` (one row per measurement: each
timed epoch, each latency sample, …), the summary to ``BENCHMARKS.md``. Everything in that
file from the "Notes" marker line on is kept when the file is regenerated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from engines.data import PROJECT_ROOT
from engines.reference import BATCH_SIZE as REFERENCE_BATCH
from engines.spec import ARCH_DEFAULTS, ARCHS, FRAMEWORKS

PARTS = ("speed", "reference", "tta", "accuracy", "inference", "dashboard")
BASE_SEED = 42  # RunSpec's default seed; seed k of a benchmark is BASE_SEED + k
FULL_TRAIN_SIZE = 55_000  # training images with the default 5,000-image validation split
TTA_THRESHOLDS = {"cnn": 0.99, "dnn": 0.98}  # validation accuracy for "time to accuracy"
BENCH_META_KEY = b"digit_lab_bench"  # Parquet schema metadata: machine, versions, command
NOTES_MARKER = "<!-- notes: everything below this line is kept when the file is regenerated -->"
DEFAULT_NOTES = """## Notes: what we tried

Write experiments here (what was tried, what each gave, what did not help). The benchmark
command rewrites everything above the marker line and keeps this section as it is.
"""

BUDGET_HELP = """\
How long (2-core machine, nothing else running):
  speed + reference   ≈ 20 min: 18 processes × 4 epochs on 55k images (a reference CNN
                      epoch takes 30-45 s)
  accuracy + tta      18 default-spec trainings (3 seeds × 6 pairs, early stopping on); at
                      most seeds × epoch cap (CNN {cnn_epochs}, DNN {dnn_epochs}) × s/epoch,
                      summed over pairs. The command prints that bound from its own speed
                      measurements before the trainings start. ≈ 45 min with CNN epochs of
                      ≈ 10 s and DNN epochs of ≈ 2 s; close to 2 hours with 25 s CNN epochs.
  inference ≈ 2 min, dashboard < 1 min
To trim: --max-epochs N (caps the trainings: no longer the default spec), --seeds 2,
--parts …, --train-limit N. --quick proves the command works in 1-3 minutes and writes
results/bench/BENCHMARKS-quick.md, never BENCHMARKS.md.
""".format(cnn_epochs=ARCH_DEFAULTS["cnn"]["epochs"], dnn_epochs=ARCH_DEFAULTS["dnn"]["epochs"])


# --- options -----------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Measure speed (vs the reference pipelines), time to accuracy, accuracy, inference "
        "latency and dashboard load time; write BENCHMARKS.md and raw Parquet numbers."
    )
    parser.epilog = BUDGET_HELP
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--framework", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS), help="default: all"
    )
    parser.add_argument(
        "--arch", nargs="+", choices=ARCHS, default=list(ARCHS), help="default: all"
    )
    parser.add_argument(
        "--parts", nargs="+", choices=PARTS, default=list(PARTS), help="default: all"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=3,
        help="timed epochs per speed measurement, after 1 warm-up (default 3)",
    )
    parser.add_argument(
        "--seeds", type=int, default=3, help="seeds per pair for accuracy/tta (default 3)"
    )
    parser.add_argument(
        "--max-epochs",
        type=int,
        help="cap on the accuracy/tta trainings (default: the spec's, "
        + ", ".join(f"{a} {d['epochs']}" for a, d in ARCH_DEFAULTS.items())
        + ")",
    )
    parser.add_argument(
        "--train-limit", type=int, help="train on the first N of the 55,000 training images"
    )
    parser.add_argument(
        "--inference-reps", type=int, default=200, help="timed predictions per model (default 200)"
    )
    parser.add_argument(
        "--dashboard-runs", type=int, default=500, help="runs in the synthetic store (default 500)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="prove the command works: 2,000 images, 1 timed epoch, 1 seed, 2 epochs of "
        "training, 20 predictions, 50 runs",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="Markdown file (default: BENCHMARKS.md; with --quick: "
        "results/bench/BENCHMARKS-quick.md, so a quick run never replaces the real numbers)",
    )
    parser.add_argument(
        "--report-from",
        type=Path,
        nargs="+",
        metavar="PARQUET",
        help="measure nothing: rewrite the Markdown from earlier runs' raw numbers; with "
        "several files, a later file's numbers replace an earlier one's for the same part and "
        "pair (e.g. a full run, then the accuracy part re-run for the CNNs)",
    )


@dataclass(frozen=True)
class Settings:
    """What one invocation measures, after ``--quick`` has adjusted the options."""

    pairs: list[tuple[str, str]]
    parts: list[str]
    timed_epochs: int
    warmup_epochs: int
    seeds: list[int]
    max_epochs: int | None
    train_limit: int | None
    val_size: int
    test_limit: int | None
    inference_reps: int
    dashboard_runs: int
    dashboard_repeats: int
    quick: bool


def settings_from_args(args: argparse.Namespace) -> Settings:
    positive = ("epochs", "seeds", "max_epochs", "train_limit", "inference_reps", "dashboard_runs")
    for name in positive:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')}: must be at least 1, got {value}")
    if args.train_limit is not None and args.train_limit > FULL_TRAIN_SIZE:
        raise ValueError(f"--train-limit: at most {FULL_TRAIN_SIZE}, got {args.train_limit}")
    quick = args.quick
    return Settings(
        pairs=[(f, a) for f in FRAMEWORKS if f in args.framework for a in ARCHS if a in args.arch],
        parts=[p for p in PARTS if p in args.parts],
        timed_epochs=1 if quick else args.epochs,
        warmup_epochs=1,
        seeds=[BASE_SEED + k for k in range(1 if quick else args.seeds)],
        max_epochs=2 if quick else args.max_epochs,
        train_limit=args.train_limit or (2000 if quick else None),
        val_size=1000 if quick else 5000,
        test_limit=1000 if quick else None,
        inference_reps=20 if quick else args.inference_reps,
        dashboard_runs=50 if quick else args.dashboard_runs,
        dashboard_repeats=3 if quick else 5,
        quick=quick,
    )


# --- the plan: one task per child process ------------------------------------------------
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


def plan(settings: Settings, workdir: Path) -> list[Task]:
    """Engine and reference of a pair back to back (their ratio sees the same machine load),
    seeds interleaved across pairs, then inference on the trained models, then the store."""
    data = {
        "train_limit": settings.train_limit,
        "val_size": settings.val_size,
        "test_limit": settings.test_limit,
    }
    epochs = {"warmup_epochs": settings.warmup_epochs, "timed_epochs": settings.timed_epochs}
    tasks: list[Task] = []
    for framework, arch in settings.pairs:
        if "speed" in settings.parts:
            same_batch = {**data, **epochs, "batch_size": REFERENCE_BATCH}
            tasks.append(Task("speed", framework, arch, options=same_batch))
            if ARCH_DEFAULTS[arch]["batch_size"] != REFERENCE_BATCH:
                tasks.append(Task("default_speed", framework, arch, options={**data, **epochs}))
        if "reference" in settings.parts:
            tasks.append(Task("reference", framework, arch, options={**data, **epochs}))
    train = "accuracy" in settings.parts or "tta" in settings.parts
    for seed in settings.seeds if train else []:
        for framework, arch in settings.pairs:
            options = {**data, "max_epochs": settings.max_epochs}
            if seed == settings.seeds[0] and "inference" in settings.parts:
                options["model_dir"] = str(model_dir(workdir, framework, arch))
            tasks.append(Task("training", framework, arch, seed, options))
    if "inference" in settings.parts:
        for framework, arch in settings.pairs:
            options = {"model_dir": str(model_dir(workdir, framework, arch))}
            options["reps"] = settings.inference_reps
            tasks.append(Task("inference", framework, arch, options=options))
    if "dashboard" in settings.parts:
        options = {"runs": settings.dashboard_runs, "repeats": settings.dashboard_repeats}
        tasks.append(Task("dashboard", options=options))
    return tasks


def model_dir(workdir: Path, framework: str, arch: str) -> Path:
    return workdir / "models" / f"{framework}-{arch}"


# --- running a task in a child process ---------------------------------------------------
CHILD_CODE = "from engines.bench import child_main; child_main()"


@dataclass
class Outcome:
    rows: list[dict[str, Any]]
    env: dict[str, Any]
    error: str | None
    seconds: float


def run_task(task: Task, workdir: Path, number: int) -> Outcome:
    """``python -c …child_main()`` with the task as JSON; its output goes to a log file that
    is shown only when the child fails."""
    task_file = workdir / f"task-{number:03d}.json"
    result_file = workdir / f"result-{number:03d}.json"
    log_file = workdir / f"task-{number:03d}.log"
    task_file.write_text(json.dumps(asdict(task)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    with open(log_file, "w") as log:
        command = [sys.executable, "-c", CHILD_CODE, str(task_file), str(result_file)]
        code = subprocess.run(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=log).returncode
    seconds = time.perf_counter() - started
    if code == 0 and result_file.is_file():
        result = json.loads(result_file.read_text())
        return Outcome(result["rows"], result["env"], None, seconds)
    tail = log_file.read_text(errors="replace").strip().splitlines()[-15:]
    return Outcome([], {}, f"exit code {code}: " + "\n".join(tail), seconds)


def child_main() -> None:
    """Entry point of a child: run one task, write ``{"rows": …, "env": …}`` as JSON."""
    task_file, result_file = sys.argv[1:3]
    task = Task(**json.loads(Path(task_file).read_text()))
    measure = MEASUREMENTS[task.kind]
    rows = measure(task)
    env = framework_env(task.framework)
    Path(result_file).write_text(json.dumps({"rows": rows, "env": env}))


# --- measurements (these run in the child) -----------------------------------------------
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


# --- raw table ---------------------------------------------------------------------------
RAW_COLUMNS = [
    "invocation",
    "part",
    "pipeline",
    "framework",
    "arch",
    "seed",
    "metric",
    "repeat",
    "warmup",
    "value",
    "unit",
]
PIPELINES = {
    "speed": "digit-lab",
    "default_speed": "digit-lab",
    "reference": "reference",
    "training": "digit-lab",
}


def raw_rows(task: Task, outcome: Outcome, invocation: str) -> list[dict[str, Any]]:
    common = {
        "invocation": invocation,
        "part": task.kind,
        "pipeline": PIPELINES.get(task.kind, "digit-lab" if task.framework else ""),
        "framework": task.framework,
        "arch": task.arch,
        "seed": task.seed,
    }
    return [{**common, **r} for r in outcome.rows]


def raw_frame(rows: list[dict[str, Any]]):
    import pandas as pd

    frame = pd.DataFrame(rows, columns=RAW_COLUMNS)
    return frame.astype({"seed": "int64", "repeat": "int64", "warmup": "bool", "value": "float64"})


def write_raw(frame, meta: dict[str, Any], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata_ = {**(table.schema.metadata or {}), BENCH_META_KEY: json.dumps(meta).encode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(metadata_), path)


def read_raw(path: Path):
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(BENCH_META_KEY, b"{}"))
    return table.to_pandas(), meta


# --- summaries (computed from the raw table) ---------------------------------------------
def values(frame, part: str, framework: str, arch: str, metric: str) -> list[float]:
    """The raw values of one metric for one pair, timed (non-warm-up) samples only."""
    selected = frame[
        (frame.part == part)
        & (frame.framework == framework)
        & (frame.arch == arch)
        & (frame.metric == metric)
        & ~frame.warmup
    ]
    return selected["value"].tolist()


@dataclass
class Speed:
    seconds: float  # median seconds per timed epoch
    epochs: int
    n_train: int
    peak_mb: float | None
    params: int | None
    batch_size: int | None = None

    @property
    def images_per_second(self) -> float:
        return self.n_train / self.seconds

    @property
    def full_epoch_seconds(self) -> float:
        """Seconds per epoch scaled to the 55,000 training images of the targets."""
        return self.seconds * FULL_TRAIN_SIZE / self.n_train


def default_speed_of(frame, framework: str, arch: str) -> Speed | None:
    """The engine's speed with its default spec: measured separately where the default
    batch differs from the reference's, else the same-batch measurement."""
    return speed_of(frame, "default_speed", framework, arch) or speed_of(
        frame, "speed", framework, arch
    )


def speed_of(frame, part: str, framework: str, arch: str) -> Speed | None:
    epochs = values(frame, part, framework, arch, "epoch_seconds")
    if not epochs:
        return None
    n_train = values(frame, part, framework, arch, "n_train")
    peak = values(frame, part, framework, arch, "peak_rss_mb")
    params = values(frame, part, framework, arch, "trainable_params")
    batch = values(frame, part, framework, arch, "batch_size")
    return Speed(
        seconds=statistics.median(epochs),
        epochs=len(epochs),
        n_train=int(n_train[0]),
        peak_mb=peak[0] if peak else None,
        params=int(params[0]) if params else None,
        batch_size=int(batch[0]) if batch else None,
    )


@dataclass
class Training:
    """The accuracy runs of one pair, one entry per seed."""

    test_accuracies: list[float]
    epochs_run: list[int]
    max_epochs: int
    wall_seconds: list[float]
    tta_seconds: list[float | None]  # per seed; None = threshold not reached
    tta_epochs: list[int | None]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.test_accuracies)

    @property
    def std(self) -> float:
        return statistics.stdev(self.test_accuracies) if len(self.test_accuracies) > 1 else 0.0


def training_of(frame, framework: str, arch: str) -> Training | None:
    runs = frame[(frame.part == "training") & (frame.framework == framework) & (frame.arch == arch)]
    if runs.empty:
        return None
    per_seed = [seed_run for _, seed_run in runs.groupby("seed", sort=True)]
    tta = [time_to_accuracy(seed_run, TTA_THRESHOLDS[arch]) for seed_run in per_seed]

    def single(seed_run, metric: str) -> float:
        return float(seed_run.loc[seed_run.metric == metric, "value"].iloc[0])

    return Training(
        test_accuracies=[single(r, "test_accuracy") for r in per_seed],
        epochs_run=[int(single(r, "epochs_run")) for r in per_seed],
        max_epochs=int(single(per_seed[0], "max_epochs")),
        wall_seconds=[single(r, "wall_seconds") for r in per_seed],
        tta_seconds=[seconds for seconds, _ in tta],
        tta_epochs=[epoch for _, epoch in tta],
    )


def time_to_accuracy(seed_run, threshold: float) -> tuple[float | None, int | None]:
    """Seconds since ``train`` started and epoch at which val accuracy first reached it."""
    accuracy = seed_run[seed_run.metric == "val_accuracy"].set_index("repeat")["value"]
    elapsed = seed_run[seed_run.metric == "elapsed_seconds"].set_index("repeat")["value"]
    reached = accuracy[accuracy >= threshold]
    if reached.empty:
        return None, None
    epoch = int(reached.index.min())
    return float(elapsed[epoch]), epoch


def latency_of(frame, framework: str, arch: str) -> dict[str, float] | None:
    samples = values(frame, "inference", framework, arch, "latency_ms")
    if not samples:
        return None
    load = values(frame, "inference", framework, arch, "load_seconds")
    stand_in = values(frame, "inference", framework, arch, "stand_in_model")
    return {
        "p50": float(np.percentile(samples, 50)),
        "p95": float(np.percentile(samples, 95)),
        "reps": len(samples),
        "load": load[0],
        "trained": not stand_in,
    }


def dashboard_of(frame) -> dict[str, float] | None:
    times = frame[(frame.part == "dashboard") & (frame.metric == "load_runs_seconds")]["value"]
    if times.empty:
        return None
    runs = frame[(frame.part == "dashboard") & (frame.metric == "store_runs")]["value"]
    return {
        "runs": int(runs.iloc[0]),
        "median": float(times.median()),
        "min": float(times.min()),
        "max": float(times.max()),
        "repeats": len(times),
    }


# --- targets (issue #4) ------------------------------------------------------------------
@dataclass
class Target:
    name: str
    measured: float | None
    limit: float
    higher_is_better: bool
    unit: str  # "s", "ms", "×", "%", "points"
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        if self.higher_is_better:
            return self.measured >= self.limit
        return self.measured <= self.limit

    def margin(self) -> str:
        """How far from the line: points for accuracies, else absolute and relative."""
        if self.measured is None:
            return "not measured"
        outcome = "met" if self.met else "missed"
        gap = abs(self.measured - self.limit)
        factor = self.measured / self.limit
        if self.unit in ("%", "points"):
            return f"{outcome} by {gap:.2f} points"
        if self.unit == "×" and self.higher_is_better:
            return f"{outcome}: {factor:.0%} of the {self.limit:g}× target"
        if self.unit == "×":
            side = "under" if self.met else "over"
            return f"{outcome}: {abs(factor - 1):.0%} {side} the {self.limit:g}× limit"
        return f"{outcome} by {fmt(gap, self.unit)} ({factor:.2f}× the limit)"


def fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "points":
        return f"{value:.2f} points"
    if unit == "×":
        return f"{value:.2f}×"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:.2f} s"


def targets(frame, settings_pairs: list[tuple[str, str]]) -> list[Target]:
    """Every target of issue #4 that this invocation measured data for."""
    found: list[Target] = []
    same_batch = {p: speed_of(frame, "speed", *p) for p in settings_pairs}
    engine = {p: default_speed_of(frame, *p) for p in settings_pairs}
    reference = {p: speed_of(frame, "reference", *p) for p in settings_pairs}
    for pair in settings_pairs:
        if same_batch[pair] and reference[pair]:
            ratio = reference[pair].seconds / same_batch[pair].seconds
            found.append(
                Target(
                    f"{label(pair)} ≥ 3× faster than its reference (same batch)",
                    ratio,
                    3.0,
                    True,
                    "×",
                )
            )

    def full_epoch(pair: tuple[str, str]) -> float | None:
        return engine[pair].full_epoch_seconds if engine.get(pair) else None

    scaled = {p: s.n_train != FULL_TRAIN_SIZE for p, s in engine.items() if s}
    limits = [
        (("torch", "cnn"), 8.0),
        (("lightning", "dnn"), 1.0),
        (("torch", "dnn"), 1.0),
        (("keras", "dnn"), 1.5),
    ]
    for pair, limit in limits:
        if full_epoch(pair) is not None:
            note = f"scaled from {engine[pair].n_train} images" if scaled[pair] else ""
            found.append(
                Target(
                    f"{label(pair)} epoch (55k images) ≤ {limit:g} s",
                    full_epoch(pair),
                    limit,
                    False,
                    "s",
                    note,
                )
            )
    torch_cnn = engine.get(("torch", "cnn"))
    for framework, limit in (("lightning", 1.1), ("keras", 1.5)):
        other = engine.get((framework, "cnn"))
        if torch_cnn and other:
            found.append(
                Target(
                    f"{framework}/cnn epoch ≤ {limit}× torch/cnn",
                    other.seconds / torch_cnn.seconds,
                    limit,
                    False,
                    "×",
                )
            )

    training = {p: training_of(frame, *p) for p in settings_pairs}
    for pair in settings_pairs:
        run = training[pair]
        if run is not None:
            limit = 99.5 if pair[1] == "cnn" else 98.6
            note = f"{len(run.test_accuracies)} seed(s)"
            found.append(
                Target(
                    f"{label(pair)} test accuracy (mean) ≥ {limit} %",
                    100 * run.mean,
                    limit,
                    True,
                    "%",
                    note,
                )
            )
    for arch in ARCHS:
        means = [100 * t.mean for (f, a), t in training.items() if a == arch and t]
        if len(means) > 1:
            found.append(
                Target(
                    f"{arch}: frameworks within 0.2 points",
                    max(means) - min(means),
                    0.2,
                    False,
                    "points",
                    f"{len(means)} frameworks",
                )
            )

    for pair in settings_pairs:
        latency = latency_of(frame, *pair)
        if latency:
            found.append(
                Target(f"{label(pair)} inference p95 ≤ 20 ms", latency["p95"], 20.0, False, "ms")
            )
    board = dashboard_of(frame)
    if board:
        note = "" if board["runs"] == 500 else f"store of {board['runs']} runs, not 500"
        found.append(
            Target("leaderboard data of 500 runs ≤ 1 s", board["median"], 1.0, False, "s", note)
        )
    return found


def label(pair: tuple[str, str]) -> str:
    return f"{pair[0]}/{pair[1]}"


# --- the Markdown report -----------------------------------------------------------------
def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in r) + " |" for r in rows]
    return "\n".join(lines)


def num(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "–" if value is None else f"{value:,.{digits}f}{suffix}"


def render(frame, meta: dict[str, Any]) -> str:
    pairs = [tuple(p) for p in meta["pairs"]]
    parts = meta["parts"]
    sections = [header_section(meta)]
    if "speed" in parts or "reference" in parts:
        sections.append(speed_section(frame, pairs, meta))
    if "tta" in parts:
        sections.append(tta_section(frame, pairs))
    if "accuracy" in parts:
        sections.append(accuracy_section(frame, pairs))
    if "inference" in parts:
        sections.append(inference_section(frame, pairs))
    if "dashboard" in parts:
        sections.append(dashboard_section(frame))
    sections.append(targets_section(frame, pairs))
    if meta.get("failures"):
        failures = "\n".join(
            f"- **{name}**: `{error.splitlines()[-1]}`" for name, error in meta["failures"]
        )
        sections.append("## Failed measurements\n\n" + failures)
    sections.append(machine_section(meta))
    return "\n\n".join(sections) + "\n"


def header_section(meta: dict[str, Any]) -> str:
    lines = [
        "<!-- generated by `python -m engines bench`: edit only below the notes marker -->",
        "# Benchmarks",
        "",
        *measured_with(meta),
        "",
        "Every process measures one thing (one pair, one pipeline); each figure is a median of "
        "several measurements; comparisons are ratios taken in one invocation. The "
        "machine may be shared, so absolute seconds vary between invocations.",
    ]
    if meta.get("interrupted_after") is not None:
        lines += [
            "",
            f"> **Interrupted** after {meta['interrupted_after']} of {meta['planned']} "
            "measurements: the tables show only what was measured.",
        ]
    if meta["quick"]:
        lines += [
            "",
            "> **Quick mode**: tiny subset, 1 timed epoch, 1 seed. These numbers "
            "prove the command works; they are not the benchmark.",
        ]
    return "\n".join(lines)


def measured_with(meta: dict[str, Any]) -> list[str]:
    """Where the numbers come from: one invocation, or several combined by --report-from."""
    where = f"on {meta['machine']['cpu']} ({meta['machine']['cores']} cores)"
    if not meta.get("sources"):
        return [
            f"Measured {meta['date']} {where} in {meta['total_seconds'] / 60:.1f} min with:",
            "",
            f"    {meta['command']}",
            "",
            f"Raw numbers: `{meta['raw_file']}`.",
        ]
    lines = [
        f"Combined from {len(meta['sources'])} invocations {where}; for each part and pair the "
        "tables use the latest invocation that measured it:",
        "",
    ]
    for source in meta["sources"]:
        lines.append(
            f"- {source['date']}, {source['total_seconds'] / 60:.1f} min: `{source['command']}` "
            f"(raw numbers `{source['raw_file']}`): {source['supplies']}"
        )
    if meta.get("mixed_ratios"):
        lines += [
            "",
            f"> **Mixed runs**: the speed-ups of {', '.join(meta['mixed_ratios'])} divide a "
            "reference time from one invocation by a Digit Lab time from another.",
        ]
    return lines


def speed_section(frame, pairs: list[tuple[str, str]], meta: dict[str, Any]) -> str:
    rows = []
    for pair in pairs:
        ours, ref = speed_of(frame, "speed", *pair), speed_of(frame, "reference", *pair)
        if not ours and not ref:
            continue
        ratio = ref.seconds / ours.seconds if ours and ref else None
        params = {s.params for s in (ours, ref) if s and s.params}
        rows.append(
            [
                label(pair),
                num(ref.seconds if ref else None),
                num(ours.seconds if ours else None),
                num(ratio, 1, "×"),
                num(ref.images_per_second if ref else None, 0),
                num(ours.images_per_second if ours else None, 0),
                num(ours.full_epoch_seconds if ours else None),
                num(ref.peak_mb if ref else None, 0),
                num(ours.peak_mb if ours else None, 0),
                " / ".join(f"{p:,}" for p in sorted(params)) or "–",
            ]
        )
    any_speed = next((s for p in pairs if (s := speed_of(frame, "speed", *p))), None)
    any_ref = next((s for p in pairs if (s := speed_of(frame, "reference", *p))), None)
    sample = any_speed or any_ref
    settings = (
        f"{sample.n_train:,} training images, median of {sample.epochs} timed epoch(s) after "
        f"{meta['warmup_epochs']} warm-up epoch; an epoch includes the validation pass."
        if sample
        else "No measurement succeeded."
    )
    headers = [
        "pair",
        "reference s/epoch",
        "Digit Lab s/epoch",
        "speed-up",
        "reference img/s",
        "Digit Lab img/s",
        "Digit Lab s/epoch at 55k",
        "reference peak MB",
        "Digit Lab peak MB",
        "params",
    ]
    return "\n".join(
        [
            "## Speed per epoch: Digit Lab vs the reference pipelines",
            "",
            settings + " Speed-up = reference s/epoch ÷ Digit Lab s/epoch. Peak MB = the "
            "measuring process's peak resident memory (framework included). Reference = the "
            "tutorial-style pipelines in `engines/reference.py`; Digit Lab = the engines' `train`, "
            f"early stopping off, otherwise the default spec, at the reference's batch size "
            f"({REFERENCE_BATCH}).",
            "",
            md_table(headers, rows),
            default_speed_table(frame, pairs),
        ]
    )


def default_speed_table(frame, pairs: list[tuple[str, str]]) -> str:
    """Digit Lab at its default batch size, where that differs from the reference's."""
    rows = []
    for pair in pairs:
        ours, same = speed_of(frame, "default_speed", *pair), speed_of(frame, "speed", *pair)
        if ours:
            gain = same.seconds / ours.seconds if same else None
            rows.append(
                [
                    label(pair),
                    ours.batch_size or "–",
                    num(ours.seconds),
                    num(ours.images_per_second, 0),
                    num(ours.full_epoch_seconds),
                    num(gain, 1, "×"),
                    num(ours.peak_mb, 0),
                ]
            )
    if not rows:
        return ""
    headers = [
        "pair",
        "default batch",
        "s/epoch",
        "img/s",
        "s/epoch at 55k",
        f"vs batch {REFERENCE_BATCH}",
        "peak MB",
    ]
    return "\n".join(
        [
            "",
            "Digit Lab with its default spec (the batch size the accuracy runs below use; "
            "the absolute epoch targets are checked against these figures):",
            "",
            md_table(headers, rows),
        ]
    )


def tta_section(frame, pairs: list[tuple[str, str]]) -> str:
    rows = []
    for pair in pairs:
        run = training_of(frame, *pair)
        if run is None:
            continue
        reached = [s for s in run.tta_seconds if s is not None]
        epochs = [e for e in run.tta_epochs if e is not None]
        seeds = len(run.tta_seconds)
        if reached:
            seconds = num(statistics.median(reached), 1)
            epoch = num(statistics.median(epochs), 1)
        else:
            seconds = f"not reached in {max(run.epochs_run)} epochs"
            epoch = "–"
        rows.append(
            [
                label(pair),
                f"{100 * TTA_THRESHOLDS[pair[1]]:.1f} %",
                seconds,
                epoch,
                f"{len(reached)}/{seeds}",
            ]
        )
    return "\n".join(
        [
            "## Time to accuracy",
            "",
            "Wall seconds from the start of `train()` until the validation accuracy first reaches "
            "the threshold, in the default-spec runs of the accuracy table (median over the seeds "
            "that reached it).",
            "",
            md_table(
                ["pair", "threshold (val)", "median seconds", "median epoch", "seeds reaching it"],
                rows,
            ),
        ]
    )


def accuracy_section(frame, pairs: list[tuple[str, str]]) -> str:
    rows, by_arch = [], {}
    for pair in pairs:
        run = training_of(frame, *pair)
        if run is None:
            continue
        by_arch.setdefault(pair[1], []).append((pair[0], 100 * run.mean))
        rows.append(
            [
                label(pair),
                f"{100 * run.mean:.2f} ± {100 * run.std:.2f} %",
                len(run.test_accuracies),
                ", ".join(f"{100 * a:.2f}" for a in run.test_accuracies),
                f"{statistics.median(run.epochs_run):g} (max {run.max_epochs})",
                num(statistics.median(run.wall_seconds), 0),
            ]
        )
    spreads = []
    for arch, means in by_arch.items():
        if len(means) > 1:
            best, worst = max(means, key=lambda m: m[1]), min(means, key=lambda m: m[1])
            spreads.append(
                [
                    arch,
                    f"{best[1] - worst[1]:.2f} points",
                    f"{best[0]} {best[1]:.2f} % / {worst[0]} {worst[1]:.2f} %",
                ]
            )
    parts = [
        "## Accuracy",
        "",
        "Default spec per pair (early stopping on the validation loss, best weights restored), "
        "test accuracy on the test images as mean ± sample std over seeds (the seed also "
        "draws the train/validation split).",
        "",
        md_table(
            [
                "pair",
                "test accuracy",
                "seeds",
                "per seed (%)",
                "epochs run (median)",
                "wall s (median)",
            ],
            rows,
        ),
    ]
    if spreads:
        parts += [
            "",
            "Spread between frameworks (best mean − worst mean):",
            "",
            md_table(["arch", "spread", "best / worst"], spreads),
        ]
    return "\n".join(parts)


def inference_section(frame, pairs: list[tuple[str, str]]) -> str:
    rows = []
    for pair in pairs:
        latency = latency_of(frame, *pair)
        if latency:
            source = "accuracy run" if latency["trained"] else "stand-in (1 epoch)"
            rows.append(
                [
                    label(pair),
                    num(latency["p50"]),
                    num(latency["p95"]),
                    latency["reps"],
                    num(latency["load"]),
                    source,
                ]
            )
    return "\n".join(
        [
            "## Inference",
            "",
            "One 28×28 test image through `load_predictor(run_dir).predict_proba` after 10 warm-up "
            "calls (same process, model loaded once).",
            "",
            md_table(["pair", "p50 ms", "p95 ms", "calls", "model load s", "model"], rows),
        ]
    )


def dashboard_section(frame) -> str:
    board = dashboard_of(frame)
    rows = []
    if board:
        rows.append(
            [
                board["runs"],
                num(board["median"], 3),
                num(board["min"], 3),
                num(board["max"], 3),
                board["repeats"],
            ]
        )
    return "\n".join(
        [
            "## Dashboard scale",
            "",
            "`engines.load_runs()` (the leaderboard's data) on a synthetic store of finished runs "
            "(run.json + 10-epoch history each), warm file cache.",
            "",
            md_table(["runs", "median s", "min s", "max s", "repeats"], rows),
        ]
    )


def targets_section(frame, pairs: list[tuple[str, str]]) -> str:
    rows = []
    for target in targets(frame, pairs):
        status = {True: "✅ met", False: "❌ missed", None: "–"}[target.met]
        measured = "–" if target.measured is None else fmt(target.measured, target.unit)
        rows.append([target.name, measured, status, target.margin(), target.note])
    met = sum(1 for r in rows if r[2] == "✅ met")
    return "\n".join(
        [
            "## Targets (issue #4)",
            "",
            f"{met} of {len(rows)} measured targets met. Computed from the tables above; epoch "
            "seconds at 55k are scaled linearly when fewer images were used.",
            "",
            md_table(["target", "measured", "status", "margin", "note"], rows),
        ]
    )


def machine_section(meta: dict[str, Any]) -> str:
    machine = meta["machine"]
    threads = machine.get("threads", {})
    before, after = meta["load_average"]
    lines = [
        "## Machine and versions",
        "",
        f"- CPU: {machine['cpu']}, {machine['cores']} logical cores "
        f"({machine['affinity']} usable by this process), {machine['memory_gb']:.1f} GB RAM",
        f"- Platform: {machine['platform']}",
        f"- Threads: {threads_text(threads)}",
        f"- Load average (1 min): {before:.2f} before the start (other work on the machine), "
        f"{after:.2f} at the end (includes the benchmark itself)",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- Date: {meta['date']}",
        f"- Command: `{meta['command']}`",
    ]
    if meta.get("sources"):  # the machine, load and versions above are the latest run's
        lines[-2:] = [
            "- Dates and commands: see the top of this file; the lines above describe the "
            f"latest run ({meta['date']})"
        ]
    return "\n".join(lines)


def threads_text(threads: dict[str, Any]) -> str:
    parts = []
    if "torch_threads" in threads:
        parts.append(
            f"torch intra-op {threads['torch_threads']}, "
            f"inter-op {threads['torch_interop_threads']}"
        )
    if "tf_intra_op_threads" in threads:
        intra, inter = threads["tf_intra_op_threads"], threads["tf_inter_op_threads"]
        parts.append(
            f"TensorFlow intra-op {intra or 'default (all cores)'}, inter-op {inter or 'default'}"
        )
    return "; ".join(parts) or "not recorded"


def write_report(text: str, path: Path) -> None:
    """Write the generated part; keep the notes section of an existing file as it is."""
    notes = NOTES_MARKER + "\n\n" + DEFAULT_NOTES
    if path.is_file():
        old = path.read_text()
        if NOTES_MARKER in old:
            notes = old[old.index(NOTES_MARKER) :]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n" + notes.rstrip("\n") + "\n")


# --- machine, versions -------------------------------------------------------------------
VERSION_PACKAGES = [
    "numpy",
    "pandas",
    "pyarrow",
    "torch",
    "torchvision",
    "lightning",
    "tensorflow",
    "keras",
]


def versions() -> dict[str, str]:
    from engines.runner import package_versions

    return package_versions(VERSION_PACKAGES)


def machine() -> dict[str, Any]:
    from engines.runner import cpu_model

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": memory_gb(),
        "platform": platform.platform(),
    }


def memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


# --- main --------------------------------------------------------------------------------
def main(args: argparse.Namespace) -> int:
    from engines import store
    from engines.data import MnistError, load_mnist

    if args.report_from is not None:
        return rerender(args.report_from, args.output)
    try:
        settings = settings_from_args(args)
    except ValueError as err:
        print(f"python -m engines bench: error: {err}", file=sys.stderr)
        return 2
    try:  # once, here: not 31 child processes failing one after another
        load_mnist()
    except MnistError as err:
        print(f"python -m engines bench: error: {err}", file=sys.stderr)
        return 1
    bench_dir = store.results_dir() / "bench"
    output = args.output or (
        bench_dir / "BENCHMARKS-quick.md" if settings.quick else PROJECT_ROOT / "BENCHMARKS.md"
    )
    started_at = datetime.now(UTC)
    stamp = started_at.strftime("%Y%m%d-%H%M%S") + ("-quick" if settings.quick else "")
    raw_path = bench_dir / f"{stamp}.parquet"
    command = "python -m engines " + shlex.join(sys.argv[1:])

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="digit-lab-bench-") as tmp:
        tasks = plan(settings, Path(tmp))
        print(f"benchmark: {len(tasks)} measurements, each in its own process", flush=True)
        measured = run_all(tasks, Path(tmp), started_at.isoformat(timespec="seconds"))

    meta = {
        "date": started_at.strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "quick": settings.quick,
        "pairs": settings.pairs,
        "parts": settings.parts,
        "warmup_epochs": settings.warmup_epochs,
        "total_seconds": time.perf_counter() - started,
        "machine": {**machine(), "threads": measured.threads},
        "load_average": [load_before, os.getloadavg()[0]],
        "versions": versions(),
        "raw_file": display_path(raw_path),
        "failures": measured.failures,
        "interrupted_after": measured.done if measured.interrupted else None,
        "planned": len(tasks),
    }
    frame = raw_frame(measured.rows)
    write_raw(frame, meta, raw_path)
    write_report(render(frame, meta), output)
    print(f"\nwrote {display_path(output)} and {display_path(raw_path)}")
    if measured.failures:
        names = ", ".join(name for name, _ in measured.failures)
        print(f"{len(measured.failures)} measurement(s) failed: {names}")
    if measured.interrupted:
        return 130
    return 1 if measured.failures else 0


@dataclass
class Measured:
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    threads: dict[str, Any] = field(default_factory=dict)
    done: int = 0
    interrupted: bool = False


def run_all(tasks: list[Task], workdir: Path, invocation: str) -> Measured:
    """Run the tasks one after another. Ctrl+C stops the benchmark but keeps what was
    measured so far (the report then says where it stopped)."""
    measured = Measured()
    started = time.perf_counter()
    try:
        first_training = next((t for t in tasks if t.kind == "training"), None)
        for number, task in enumerate(tasks, start=1):
            if task is first_training:
                print(training_estimate(tasks, measured.rows), flush=True)
            print(f"[{number}/{len(tasks)}] {task.label} … ", end="", flush=True)
            outcome = run_task(task, workdir, number)
            measured.rows += raw_rows(task, outcome, invocation)
            measured.threads.update({k: v for k, v in outcome.env.items() if "threads" in k})
            measured.done = number
            total = f"{(time.perf_counter() - started) / 60:.1f} min in total"
            if outcome.error:
                measured.failures.append((task.label, outcome.error))
                print(f"FAILED after {outcome.seconds:.0f} s\n{outcome.error}", flush=True)
            else:
                print(
                    f"{outcome.seconds:.0f} s, {headline(task, outcome.rows)}; {total}", flush=True
                )
    except KeyboardInterrupt:
        measured.interrupted = True
        print(f"\ninterrupted: reporting the {measured.done} measurement(s) already done")
    return measured


def rerender(raw_paths: list[Path], output: Path | None) -> int:
    sources = []
    for path in raw_paths:
        if not path.is_file():
            print(f"python -m engines bench: error: no such file: {path}", file=sys.stderr)
            return 2
        try:
            frame, meta = read_raw(path)
        except (OSError, ValueError) as err:  # not Parquet
            print(f"python -m engines bench: error: cannot read {path}: {err}", file=sys.stderr)
            return 2
        if not meta:
            print(
                f"python -m engines bench: error: {path} has no benchmark metadata", file=sys.stderr
            )
            return 2
        sources.append((frame, meta))
    frame, meta = combine(sources) if len(sources) > 1 else sources[0]
    default = (
        raw_paths[0].parent / "BENCHMARKS-quick.md"
        if meta["quick"]
        else PROJECT_ROOT / "BENCHMARKS.md"
    )
    output = output or default
    write_report(render(frame, meta), output)
    names = ", ".join(display_path(path) for path in raw_paths)
    print(f"wrote {display_path(output)} from {names}")
    return 0


def combine(sources: list[tuple[Any, dict[str, Any]]]) -> tuple[Any, dict[str, Any]]:
    """Several runs' raw numbers as one: each (part, pair) comes from the last run that
    measured it, so a part can be re-measured without re-running the whole benchmark.

    The report names every run and what it supplied, and warns where a speed-up would divide
    numbers from two different runs."""
    import pandas as pd

    owner: dict[tuple[str, str, str], int] = {}  # (raw part, framework, arch) -> source index
    for index, (frame, _) in enumerate(sources):
        for key in zip(frame.part, frame.framework.fillna(""), frame.arch.fillna(""), strict=True):
            owner[key] = index
    kept = []
    for index, (frame, _) in enumerate(sources):
        keys = zip(frame.part, frame.framework.fillna(""), frame.arch.fillna(""), strict=True)
        kept.append(frame[[owner[key] == index for key in keys]])

    metas = [meta for _, meta in sources]
    latest = metas[-1]
    pairs = {tuple(pair) for meta in metas for pair in meta["pairs"]}
    parts = {part for meta in metas for part in meta["parts"]}
    timed = [m for m in metas if {"speed", "reference"} & set(m["parts"])]
    meta = {
        **latest,
        "pairs": [(f, a) for f in FRAMEWORKS for a in ARCHS if (f, a) in pairs],
        "parts": [part for part in PARTS if part in parts],
        "quick": any(m["quick"] for m in metas),
        "warmup_epochs": (timed or metas)[-1]["warmup_epochs"],
        "machine": {
            **latest["machine"],
            "threads": (timed or metas)[-1]["machine"].get("threads", {}),
        },
        "failures": [failure for m in metas for failure in m.get("failures", [])],
        "interrupted_after": None,
        "sources": [
            {
                **{name: m[name] for name in ("date", "command", "raw_file", "total_seconds")},
                "supplies": supplied_text([key for key, i in owner.items() if i == index]),
            }
            for index, m in enumerate(metas)
        ],
        "mixed_ratios": [
            f"{framework}/{arch}"
            for (part, framework, arch), index in owner.items()
            if part == "speed" and owner.get(("reference", framework, arch), index) != index
        ],
    }
    return pd.concat(kept, ignore_index=True), meta


RAW_PART_NAMES = {  # raw `part` column -> what the report calls it
    "speed": "speed at batch 32",
    "reference": "reference speed",
    "default_speed": "speed with the default spec",
    "training": "accuracy and time to accuracy",
    "inference": "inference",
    "dashboard": "dashboard scale",
}


def supplied_text(keys: list[tuple[str, str, str]]) -> str:
    """[("training", "torch", "cnn"), …] as "accuracy and time to accuracy (torch/cnn, …), …"."""
    if not keys:
        return "nothing (all its numbers were measured again later)"
    texts = []
    for part, name in RAW_PART_NAMES.items():
        labels = sorted(f"{f}/{a}" for p, f, a in keys if p == part and f)
        if labels:
            texts.append(f"{name} ({'all 6 pairs' if len(labels) == 6 else ', '.join(labels)})")
        elif any(p == part for p, _, _ in keys):
            texts.append(name)
    return ", ".join(texts)


def training_estimate(tasks: list[Task], rows: list[dict[str, Any]]) -> str:
    """Upper bound of the accuracy runs' time from the engine speeds just measured (every
    run to its epoch cap; early stopping usually ends them sooner)."""
    by_part: dict[str, dict[tuple[str, str], list[float]]] = {"speed": {}, "default_speed": {}}
    for r in rows:
        if r["part"] in by_part and r["metric"] == "epoch_seconds" and not r["warmup"]:
            by_part[r["part"]].setdefault((r["framework"], r["arch"]), []).append(r["value"])
    seconds = {**by_part["speed"], **by_part["default_speed"]}  # trainings use the default spec
    total = 0.0
    for task in tasks:
        if task.kind != "training":
            continue
        if (task.framework, task.arch) not in seconds:
            return "training runs: no speed measured for every pair, no estimate"
        cap = task.options["max_epochs"] or ARCH_DEFAULTS[task.arch]["epochs"]
        cap = min(cap, ARCH_DEFAULTS[task.arch]["epochs"])
        total += cap * statistics.median(seconds[(task.framework, task.arch)])
    return f"training runs: at most ≈ {total / 60:.0f} min (each to its epoch cap)"


def headline(task: Task, rows: list[dict]) -> str:
    """One figure to show while the benchmark runs."""

    def pick(metric: str) -> list[float]:
        return [r["value"] for r in rows if r["metric"] == metric and not r["warmup"]]

    if task.kind in ("speed", "default_speed", "reference"):
        return f"{statistics.median(pick('epoch_seconds')):.2f} s/epoch"
    if task.kind == "training":
        accuracy, epochs = pick("test_accuracy")[0], pick("epochs_run")[0]
        return f"test accuracy {100 * accuracy:.2f} % in {epochs:g} epochs"
    if task.kind == "inference":
        return f"p95 {np.percentile(pick('latency_ms'), 95):.2f} ms"
    return f"load_runs {statistics.median(pick('load_runs_seconds')):.3f} s"


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)
