"""The run store: one folder per run under ``results/`` (or ``RESULTS_DIR``).

    results/<run_id>/run.json                   metadata and final metrics
    results/<run_id>/history.parquet            one row per epoch
    results/<run_id>/test_predictions.parquet   one row per test image
    results/<run_id>/model.keras | model.pt     the trained model
    results/bench/                              the benchmark's raw numbers, not a run

Every file is written to a temporary name and moved into place with ``os.replace``, so a
reader sees either the old file or the new one, never half of one. Readers skip runs they
cannot read and say why, instead of failing.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from engines.data import PROJECT_ROOT
from engines.spec import MAX_NOTES, MNIST_TEST_IMAGES, RunSpec

RUN_JSON = "run.json"
HISTORY = "history.parquet"
PREDICTIONS = "test_predictions.parquet"
MODEL_FILES = ("model.keras", "model.pt")
STATUSES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_STATUSES = ("queued", "running")  # a job that has not finished yet
HISTORY_NUMBERS = [
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "epoch_seconds",
]
HISTORY_COLUMNS = [*HISTORY_NUMBERS, "run_id", "framework", "arch"]
PROB_COLUMNS = [f"p{d}" for d in range(10)]
PREDICTION_COLUMNS = ["index", "label", "predicted", *PROB_COLUMNS]
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # what now_iso writes
# run.json fields readers rely on (besides status and spec) and the types each may have;
# all but the required ones appear only as the run goes on. bool is never a number here.
_NUMBER, _NONE = (int, float), type(None)
METRICS = [
    "test_accuracy",
    "test_loss",
    "wall_seconds",
    "seconds_per_epoch",
    "best_epoch",
    "stopped_epoch",
    "trainable_params",
]
RUN_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "run_id": (str,),
    "created_at": (str,),  # as now_iso writes it
    "queued_at": _NUMBER,
    "host": (dict,),
    "pid": (int, _NONE),
    "started_at": (str,),  # as now_iso writes it
    "finished_at": (str,),  # as now_iso writes it
    "error": (str, _NONE),
    "progress": (dict,),
    **dict.fromkeys(METRICS, (*_NUMBER, _NONE)),
}
TIMESTAMP_FIELDS = ("created_at", "started_at", "finished_at")
PROGRESS_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "epoch": (int,),
    "epochs": (int,),
    "val_accuracy": (*_NUMBER, _NONE),
}
REQUIRED_RUN_FIELDS = ("run_id", "created_at")
BENCH_DIR = "bench"  # the one folder in the store that is not a run


class StoreError(RuntimeError):
    """A run folder is missing, incomplete or unreadable."""


# --- locations ---------------------------------------------------------------------------
def results_dir(path: str | Path | None = None) -> Path:
    """``path`` if given, else ``RESULTS_DIR``, else ``results/`` in the project."""
    if path is not None:
        return Path(path)
    env = os.environ.get("RESULTS_DIR")
    return Path(env).expanduser() if env else PROJECT_ROOT / "results"


def bench_dir(root: str | Path | None = None) -> Path:
    """Where ``python -m engines bench`` keeps its raw numbers, beside the runs."""
    return results_dir(root) / BENCH_DIR


def now_iso() -> str:
    return datetime.now(UTC).strftime(TIMESTAMP_FORMAT)


def file_stamp() -> str:
    """Local date and time for a file name (``20261128-093015``): exports do not collide."""
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def new_run_id(spec: RunSpec) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{spec.framework}-{spec.arch}-{secrets.token_hex(3)}"


# --- atomic writes -----------------------------------------------------------------------
def _umask() -> int:
    """The process's umask, read without setting it (``os.umask`` would, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022  # the usual default where /proc is not there


# What open() gives a new file: the store's files are as readable as any other file the
# user writes, e.g. by the rest of a team sharing RESULTS_DIR.
FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: Path, write: Callable[[str], object], suffix: str = ".tmp") -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then move it into place: readers
    see the old file or the new one, never half of one. ``suffix`` ends the temporary name
    (Keras saves only to names ending in ``.keras``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, FILE_MODE)  # mkstemp makes it owner-only; a shared store is not
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, default=_json_default)

    atomic_write(path, write)


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# --- one run -----------------------------------------------------------------------------
def create_run(
    spec: RunSpec, root: str | Path | None = None, status: str = "queued", **fields: Any
) -> Path:
    """Make a new run folder with a ``run.json`` and return its path.

    ``fields`` go into ``run.json`` as well: a run created ``running`` names its process
    (``pid``, ``host``) from the start, so if that process dies before training begins the
    run reads as failed instead of running for ever.
    """
    run_id = new_run_id(spec)
    run_dir = results_dir(root) / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    run = {
        "run_id": run_id,
        "status": status,
        "spec": spec.to_dict(),
        "created_at": now_iso(),
        "queued_at": time.time(),  # sub-second order of a batch of jobs
        **fields,
    }
    try:
        write_json(run_dir / RUN_JSON, run)
    except BaseException:  # Ctrl-C included: a whole run folder or none
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """``run.json`` as a dict, checked enough that callers can rely on its keys."""
    path = Path(run_dir) / RUN_JSON
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise StoreError(f"{Path(run_dir).name}: no {RUN_JSON}") from err
    except (OSError, ValueError) as err:
        raise StoreError(f"{Path(run_dir).name}: unreadable {RUN_JSON} ({err})") from err
    if not isinstance(data, dict) or data.get("status") not in STATUSES:
        raise StoreError(f"{Path(run_dir).name}: {RUN_JSON} has no valid status")
    try:
        RunSpec.from_stored(data.get("spec"))
    except (TypeError, ValueError) as err:
        raise StoreError(f"{Path(run_dir).name}: invalid spec in {RUN_JSON} ({err})") from err
    problem = _run_problem(data, Path(run_dir).name)
    if problem:
        raise StoreError(f"{Path(run_dir).name}: {RUN_JSON} {problem}")
    return data


def _run_problem(run: dict[str, Any], folder: str) -> str | None:
    """What is wrong with the fields of ``run`` (see :data:`RUN_FIELD_TYPES`), or ``None``."""
    for name in REQUIRED_RUN_FIELDS:
        if name not in run:
            return f"has no {name}"
    problem = _type_problem(run, RUN_FIELD_TYPES) or _type_problem(
        run.get("progress", {}), PROGRESS_FIELD_TYPES, prefix="progress."
    )
    if problem:
        return problem
    if run["run_id"] != folder:
        return f"names run {run['run_id']!r}, not its folder (a copied folder?)"
    for name in TIMESTAMP_FIELDS:
        if name in run and not _is_timestamp(run[name]):
            return f"has {name} {run[name]!r}, not a UTC time like {now_iso()!r}"
    return None


def _type_problem(fields: dict, types: dict[str, tuple[type, ...]], prefix: str = "") -> str | None:
    """The first of ``fields`` whose value has none of its allowed ``types``, described."""
    for name, allowed in types.items():
        value = fields.get(name)
        if name in fields and (isinstance(value, bool) or not isinstance(value, allowed)):
            return f"has {prefix}{name} {value!r:.40}, not {_type_names(allowed)}"
    return None


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join("null" if t is _NONE else t.__name__ for t in types)


def _is_timestamp(text: str) -> bool:
    """``text`` is a UTC time exactly as :func:`now_iso` writes it."""
    try:
        return datetime.strptime(text, TIMESTAMP_FORMAT).strftime(TIMESTAMP_FORMAT) == text
    except ValueError:
        return False


def update_run(run_dir: str | Path, **fields: Any) -> dict[str, Any]:
    data = read_run(run_dir)
    data.update(fields)
    write_json(Path(run_dir) / RUN_JSON, data)
    return data


def write_history(run_dir: str | Path, run: dict[str, Any], rows: Iterable[dict]) -> None:
    frame = pd.DataFrame(list(rows))
    frame["run_id"] = run["run_id"]
    frame["framework"] = run["spec"]["framework"]
    frame["arch"] = run["spec"]["arch"]
    write_parquet(Path(run_dir) / HISTORY, frame[HISTORY_COLUMNS])


def write_predictions(run_dir: str | Path, labels: np.ndarray, probabilities: np.ndarray) -> None:
    probabilities = np.asarray(probabilities, dtype=np.float32)
    frame = pd.DataFrame(probabilities, columns=PROB_COLUMNS)
    frame.insert(0, "index", np.arange(len(labels), dtype=np.int32))
    frame.insert(1, "label", np.asarray(labels, dtype=np.int8))
    frame.insert(2, "predicted", probabilities.argmax(axis=1).astype(np.int8))
    write_parquet(Path(run_dir) / PREDICTIONS, frame)


def read_history(run_dir: str | Path) -> pd.DataFrame:
    path = Path(run_dir) / HISTORY
    frame = _read_parquet(path, HISTORY_COLUMNS)
    _check_numeric(path, frame, HISTORY_NUMBERS)
    return frame


def read_predictions(run_dir: str | Path) -> pd.DataFrame:
    """The test predictions; ``index`` is each row's position among the MNIST test images."""
    path = Path(run_dir) / PREDICTIONS
    frame = _read_parquet(path, PREDICTION_COLUMNS)
    _check_numeric(path, frame, PREDICTION_COLUMNS)
    for column in ("label", "predicted"):
        digits = frame[column]
        if not (pd.api.types.is_integer_dtype(digits) and digits.between(0, 9).all()):
            raise StoreError(f"{path.parent.name}: {path.name} has a {column} not a digit 0-9")
    index = frame["index"]
    if not (pd.api.types.is_integer_dtype(index) and index.between(0, MNIST_TEST_IMAGES - 1).all()):
        raise StoreError(
            f"{path.parent.name}: {path.name} has an index outside the "
            f"{MNIST_TEST_IMAGES:,} test images"
        )
    if index.duplicated().any():
        raise StoreError(f"{path.parent.name}: {path.name} lists a test image twice")
    return frame


def check_run_files(run_dir: Path) -> None:
    """Read the run's history and predictions, where present, as the pages will: a
    :class:`StoreError` names the first file they could not use."""
    if (run_dir / HISTORY).exists():
        read_history(run_dir)
    if (run_dir / PREDICTIONS).exists():
        read_predictions(run_dir)


def _check_numeric(path: Path, frame: pd.DataFrame, columns: list[str]) -> None:
    for column in columns:
        values = frame[column]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            raise StoreError(f"{path.parent.name}: {path.name} has non-numeric {column!r} values")


def _read_parquet(path: Path, columns: list[str]) -> pd.DataFrame:
    """The Parquet file as a table; it must have every one of ``columns``."""
    if path.is_dir():  # pyarrow would read a folder as an empty dataset
        raise StoreError(f"{path.parent.name}: {path.name} is a folder, not a file")
    try:
        frame = pq.read_table(path).to_pandas()
    except FileNotFoundError as err:
        raise StoreError(f"{path.parent.name}: no {path.name}") from err
    except (OSError, pa.ArrowException) as err:
        reason = str(err).replace(str(path), path.name)  # the folder is named already
        raise StoreError(f"{path.parent.name}: unreadable {path.name} ({reason})") from err
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise StoreError(f"{path.parent.name}: {path.name} lacks columns {missing}")
    return frame


def model_path(run_dir: str | Path) -> Path | None:
    for name in MODEL_FILES:
        if (Path(run_dir) / name).is_file():
            return Path(run_dir) / name
    return None


def delete_run(run_dir: str | Path, root: str | Path | None = None) -> None:
    """Remove a run folder; refuses anything that is not directly inside the store."""
    run_dir = Path(run_dir).resolve()
    if run_dir.parent != results_dir(root).resolve():
        raise StoreError(f"{run_dir} is not a run folder of {results_dir(root)}")
    shutil.rmtree(run_dir)


def set_notes(run_dir: str | Path, notes: str) -> dict[str, Any]:
    """Replace a finished run's notes (``spec.notes``), e.g. to say afterwards what it tried.

    Not while it is queued or running: its job rewrites ``run.json`` every epoch and would
    put the old notes back.
    """
    run = read_run(run_dir)
    name, status = Path(run_dir).name, effective_status(run)
    if status in ACTIVE_STATUSES:
        raise StoreError(f"{name} is still {status}: edit its notes once it has finished")
    notes = notes.strip()
    if len(notes) > MAX_NOTES:
        raise StoreError(f"notes of {len(notes)} characters: keep them to {MAX_NOTES}")
    run["spec"]["notes"] = notes
    write_json(Path(run_dir) / RUN_JSON, run)
    return run


# --- liveness ----------------------------------------------------------------------------
def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def missing_parts(run_dir: Path, status: str) -> str:
    """What a ``done`` run lacks of the files the pages need ("" when complete): its row on
    the leaderboard looks fine, but Curves, Confusion or Draw would fail on it."""
    if status != "done":
        return ""
    missing = [name for name in (HISTORY, PREDICTIONS) if not (run_dir / name).is_file()]
    if model_path(run_dir) is None:
        missing.append(f"model file ({' or '.join(MODEL_FILES)})")
    return ", ".join(missing)


def effective_status(run: dict[str, Any]) -> str:
    """The status, except that a ``running`` run whose process is gone counts as failed."""
    status = run["status"]
    pid, host = run.get("pid"), run.get("host", {}).get("name")
    if status == "running" and pid and host == socket.gethostname() and not process_alive(pid):
        return "failed"
    return status


# --- the whole store ---------------------------------------------------------------------
LEADERBOARD_COLUMNS = [
    "run_id",
    "framework",
    "arch",
    "status",
    "test_accuracy",
    "test_loss",
    "best_epoch",
    "stopped_epoch",
    "wall_seconds",
    "seconds_per_epoch",
    "trainable_params",
    "seed",
    "created_at",
]


def iter_run_dirs(root: str | Path | None = None) -> list[Path]:
    base = results_dir(root)
    if not base.is_dir():
        return []
    return sorted(
        p
        for p in base.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name != BENCH_DIR
    )


def load_runs(results_dir: str | Path | None = None) -> pd.DataFrame:
    """All runs as a table, newest first; one row per readable run.

    Columns: :data:`LEADERBOARD_COLUMNS`, then every spec field as ``spec_<name>``, then
    ``train_images`` and ``test_images`` (what the run used, limits or not), ``host`` (the
    machine that trained it, once it started), ``error``, ``progress``, ``queued_at`` (the
    order the worker takes jobs in) and ``run_dir``.
    Unreadable folders are skipped and listed in ``frame.attrs["skipped"]`` as
    ``(folder name, reason)`` pairs.
    """
    return table_of_runs(iter_run_dirs(results_dir))


def table_of_runs(run_dirs: Iterable[str | Path]) -> pd.DataFrame:
    """:func:`load_runs`'s table for the given run folders only (the report's picked runs)."""
    rows, skipped = [], []
    for run_dir in map(Path, run_dirs):
        try:
            run = read_run(run_dir)
        except StoreError as err:
            skipped.append((run_dir.name, str(err)))
            continue
        rows.append(_flatten(run, run_dir))
    spec_columns = [f"spec_{name}" for name in RunSpec("torch", "dnn").to_dict()]
    columns = [
        *LEADERBOARD_COLUMNS, *spec_columns, "train_images", "test_images", "host",
        "error", "progress", "queued_at", "run_dir",
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    frame = frame.sort_values("created_at", ascending=False, kind="stable").reset_index(drop=True)
    frame.attrs["skipped"] = skipped
    return frame


def recheck_running(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` (from :func:`load_runs`) with each ``running`` row's process checked again.

    A killed training process never rewrites its ``run.json``, so a table cached on the
    store's files would list it as running for ever; this re-reads only those rows.
    """
    running = runs.index[runs["status"] == "running"]
    if running.empty:
        return runs
    runs = runs.copy()
    for index in running:
        run_dir = Path(runs.at[index, "run_dir"])
        try:
            row = _flatten(read_run(run_dir), run_dir)
        except StoreError:
            continue  # deleted or rewritten meanwhile: the next reload shows it as it is
        runs.loc[index, ["status", "error"]] = [row["status"], row["error"]]
    return runs


def _flatten(run: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    used = RunSpec.from_stored(run["spec"])
    spec = used.to_dict()
    row = {name: run.get(name) for name in LEADERBOARD_COLUMNS}
    row.update(framework=spec["framework"], arch=spec["arch"], seed=spec["seed"])
    row["status"] = effective_status(run)
    row.update({f"spec_{k}": v for k, v in spec.items()})
    row.update(train_images=used.train_images, test_images=used.test_images)
    row["host"] = run.get("host", {}).get("name")
    row["error"] = run.get("error")
    if row["status"] == "failed" and run["status"] == "running":
        row["error"] = "training process ended without finishing (killed?)"
    row["progress"] = run.get("progress")
    row["queued_at"] = run.get("queued_at")
    row["run_dir"] = str(run_dir)
    return row
