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

This module is the command: options, the plan (one task per child process), running the
children, and writing the results. The measurements themselves are in
:mod:`engines.bench_child`; the raw table, the targets and the report in
:mod:`engines.bench_report`.
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

from engines.bench_child import BASE_SEED, FULL_TRAIN_SIZE, Task
from engines.bench_report import (
    PARTS,
    combine,
    raw_frame,
    read_raw,
    render,
    write_raw,
    write_report,
)
from engines.data import PROJECT_ROOT
from engines.reference import BATCH_SIZE as REFERENCE_BATCH
from engines.spec import ARCH_DEFAULTS, ARCHS, FRAMEWORKS

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
results/bench/BENCHMARKS-quick.md, never BENCHMARKS.md. A run of some parts or pairs only
writes results/bench/BENCHMARKS-<time>.md; --report-from merges it with earlier raw files.
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
        help="Markdown file (default: BENCHMARKS.md for a run of every part and pair; "
        "results/bench/BENCHMARKS-quick.md with --quick and results/bench/BENCHMARKS-<time>.md "
        "for a run of some parts or pairs, so neither replaces the full tables)",
    )
    parser.add_argument(
        "--report-from",
        type=Path,
        nargs="+",
        metavar="PARQUET",
        help="measure nothing: rewrite the Markdown from earlier runs' raw numbers; with "
        "several files, the later run's numbers (by its date) replace the earlier one's for the "
        "same part and pair (e.g. a full run, then the accuracy part re-run for the CNNs)",
    )


# --- settings ----------------------------------------------------------------------------
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
    positive = ("epochs", "seeds", "max_epochs", "inference_reps", "dashboard_runs")
    for name in positive:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')}: must be at least 1, got {value}")
    if args.train_limit is not None and args.train_limit > FULL_TRAIN_SIZE:
        raise ValueError(f"--train-limit: at most {FULL_TRAIN_SIZE}, got {args.train_limit}")
    if args.train_limit is not None and args.train_limit < 2:  # the runs' own rule (RunSpec)
        raise ValueError(f"--train-limit: must be at least 2, got {args.train_limit}")
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


MEASURING_OPTIONS = (
    "framework",
    "arch",
    "parts",
    "epochs",
    "seeds",
    "max_epochs",
    "train_limit",
    "inference_reps",
    "dashboard_runs",
    "quick",
)


def measuring_options_given(args: argparse.Namespace) -> list[str]:
    """The measuring options set on the command line (``--report-from`` measures nothing,
    so they would be silently ignored there)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    defaults = parser.parse_args([])
    return [
        "--" + name.replace("_", "-")
        for name in MEASURING_OPTIONS
        if getattr(args, name) != getattr(defaults, name)
    ]


def is_partial(settings: Settings) -> bool:
    """Whether this invocation leaves some part or pair unmeasured."""
    return len(settings.parts) < len(PARTS) or len(settings.pairs) < len(FRAMEWORKS) * len(ARCHS)


def default_output(settings: Settings, bench_dir: Path, stamp: str) -> Path:
    """Where the report goes without ``--output``. Only a full, non-quick run rewrites
    BENCHMARKS.md: a partial report would drop the tables of everything it did not measure."""
    if settings.quick:
        return bench_dir / "BENCHMARKS-quick.md"
    if is_partial(settings):
        return bench_dir / f"BENCHMARKS-{stamp}.md"
    return PROJECT_ROOT / "BENCHMARKS.md"


# --- the plan: one task per child process ------------------------------------------------
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
CHILD_CODE = "from engines.bench_child import child_main; child_main()"


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
    from engines.core import usable_cores
    from engines.runner import cpu_model

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "affinity": usable_cores(),
        "memory_gb": memory_gb(),
        "platform": platform.platform(),
    }


def vector_units() -> str:
    """The CPU's vector instructions (from ``/proc/cpuinfo``), which set most of the
    convolutions' speed: hosts differ between sessions (one with AVX2 and no AVX-512 ran a
    CNN step ~2.5x slower than the hosts before it)."""
    from engines.runner import cpuinfo_value

    line = cpuinfo_value("flags")
    if line is None:
        return "unknown"
    flags = set(line.split())
    names = [
        ("amx_bf16", "AMX-BF16"),
        ("avx512_bf16", "AVX-512 BF16"),
        ("avx512f", "AVX-512"),
        ("avx2", "AVX2"),
        ("fma", "FMA"),
    ]
    return ", ".join(label for flag, label in names if flag in flags) or "no AVX2"


def matmul_gflops(size: int = 1024, repeats: int = 10) -> float:
    """FP32 matrix-product throughput (NumPy's BLAS, all its threads), median of ``repeats``.

    A one-second yardstick taken at the start of every invocation: absolute seconds from
    two invocations compare only if the yardstick agrees (another host, or a busy one)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    a @ b  # warm-up
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        seconds.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(seconds) / 1e9


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
    from engines.data import MnistError, check_standard, load_mnist, mnist_dir

    if args.report_from is not None:
        given = measuring_options_given(args)
        if given:
            return fail(f"--report-from measures nothing: leave out {', '.join(given)}", 2)
        return rerender(args.report_from, args.output)
    try:
        settings = settings_from_args(args)
    except ValueError as err:
        return fail(str(err), 2)
    if args.output is not None and (problem := output_problem(args.output)):
        return fail(problem, 2)
    bench_dir = store.bench_dir()
    try:  # before measuring: a folder that cannot be made would lose an hour of numbers
        bench_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return fail(f"cannot create {bench_dir} for the raw numbers: {err.strerror or err}", 1)
    try:  # once, here: not 31 child processes failing one after another
        check_standard(load_mnist(), mnist_dir())  # numbers on the published MNIST only
    except MnistError as err:
        return fail(str(err), 1)
    started_at = datetime.now(UTC)
    stamp = started_at.strftime("%Y%m%d-%H%M%S") + ("-quick" if settings.quick else "")
    raw_path = bench_dir / f"{stamp}.parquet"
    output = args.output or default_output(settings, bench_dir, stamp)
    command = "python -m engines " + shlex.join(sys.argv[1:])

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    yardstick = {"vector_units": vector_units(), "matmul_gflops": matmul_gflops()}
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
        "machine": {**machine(), **yardstick, "threads": measured.threads},
        "load_average": [load_before, os.getloadavg()[0]],
        "versions": versions(),
        "raw_file": display_path(raw_path),
        "failures": measured.failures,
        "interrupted_after": measured.done if measured.interrupted else None,
        "planned": len(tasks),
    }
    frame = raw_frame(measured.rows)
    try:
        write_raw(frame, meta, raw_path)
    except OSError as err:
        return fail(f"the numbers were measured but cannot be written to {raw_path}: {err}", 1)
    try:
        write_report(render(frame, meta), output)
    except OSError as err:
        return fail(
            f"cannot write {output} ({err.strerror or err}); the raw numbers are in "
            f"{display_path(raw_path)}: python -m engines bench --report-from "
            f"{display_path(raw_path)} --output <file> writes the report from them",
            1,
        )
    print(f"\nwrote {display_path(output)} and {display_path(raw_path)}")
    if args.output is None and is_partial(settings) and not settings.quick:
        print(
            "A run of some parts or pairs does not replace BENCHMARKS.md. To merge it with the "
            "raw files of the full run (listed at the top of BENCHMARKS.md): python -m engines "
            f"bench --report-from <those files> {display_path(raw_path)}"
        )
    if measured.failures:
        names = ", ".join(name for name, _ in measured.failures)
        print(f"{len(measured.failures)} measurement(s) failed: {names}")
    if measured.interrupted:
        return 130
    return 1 if measured.failures else 0


def fail(message: str, code: int) -> int:
    print(f"python -m engines bench: error: {message}", file=sys.stderr)
    return code


def output_problem(output: Path) -> str | None:
    """Why the report cannot be written to ``--output`` (checked before measuring), or None."""
    if output.is_dir():
        return f"--output: {output} is a folder; give a file name"
    if not output.parent.is_dir():
        return f"--output: {output.parent} is not a folder"
    return None


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


# --- rebuilding the report from raw numbers ----------------------------------------------
def rerender(raw_paths: list[Path], output: Path | None) -> int:
    from engines import store

    if output is not None and (problem := output_problem(output)):
        return fail(problem, 2)
    sources = []
    for path in raw_paths:
        if not path.is_file():
            return fail(f"no such file: {path}", 2)
        try:
            sources.append(read_raw(path))
        except (OSError, ValueError) as err:
            return fail(f"cannot read {path}: {err}", 2)
    frame, meta = combine(sources) if len(sources) > 1 else sources[0]
    metas = [meta for _, meta in sources]
    partial = output is None and not any(meta["quick"] for meta in metas)
    output = output or rerender_output(metas, raw_paths[0].parent, store.bench_dir())
    partial = partial and output != PROJECT_ROOT / "BENCHMARKS.md"
    try:
        write_report(render(frame, meta), output)
    except OSError as err:
        return fail(f"cannot write {output}: {err.strerror or err}", 1)
    names = ", ".join(display_path(path) for path in raw_paths)
    print(f"wrote {display_path(output)} from {names}")
    if partial:
        print(
            "These numbers do not cover every part and pair, so they do not replace "
            "BENCHMARKS.md; add the raw files of the parts and pairs they lack."
        )
    return 0


def rerender_output(metas: list[dict[str, Any]], raw_folder: Path, bench_dir: Path) -> Path:
    """Like :func:`default_output`: BENCHMARKS.md only for numbers that cover every part of
    every pair (one full run, or several runs together); never for quick ones."""
    if any(meta["quick"] for meta in metas):
        return raw_folder / "BENCHMARKS-quick.md"
    covered = {
        (part, tuple(pair)) for meta in metas for part in meta["parts"] for pair in meta["pairs"]
    }
    every = {(part, (f, a)) for part in PARTS for f in FRAMEWORKS for a in ARCHS}
    if every <= covered:
        return PROJECT_ROOT / "BENCHMARKS.md"
    return bench_dir / f"BENCHMARKS-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}.md"
