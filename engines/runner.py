"""Run one training job end to end and record it in the store.

This is what ``python -m engines train`` executes, in its own process: mark the run
``running``, train with the spec's engine, write history (after every epoch, so the
dashboard can follow along), predictions and model, then mark it ``done``. Any exception
marks it ``failed`` with the error; SIGTERM (the dashboard's cancel) marks it ``cancelled``.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import statistics
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from engines import store
from engines.core import EpochStats, import_engine, usable_cores
from engines.data import MnistError
from engines.spec import RunSpec


class Cancelled(BaseException):
    """Raised inside the training process when it receives SIGTERM.

    A ``BaseException``, like ``KeyboardInterrupt``: the libraries' own ``except Exception``
    blocks (an import's optional parts, Keras's error wrapping) must not swallow or reword it.
    """


class _StopRequests:
    """SIGTERM (the dashboard's cancel), SIGINT (Ctrl-C) and SIGHUP (the terminal running
    ``train`` was closed) during a training, remembered.

    Each raises in the training code, but a library may turn that into an error of its own
    (Keras has raised ``ValueError: None values not supported`` for a Ctrl-C mid-step): a
    run that was asked to stop is recorded as cancelled whatever the exception says.
    """

    def __init__(self) -> None:
        self.reason: str | None = None

    def terminate(self, signum: int, frame: Any) -> None:
        self.reason = "cancelled during training"
        raise Cancelled(self.reason)

    def interrupt(self, signum: int, frame: Any) -> None:
        self.reason = "cancelled during training (Ctrl-C)"
        raise KeyboardInterrupt

    def hang_up(self, signum: int, frame: Any) -> None:
        self.reason = "cancelled during training (its terminal was closed)"
        raise Cancelled(self.reason)


def library_versions(framework: str) -> dict[str, str]:
    """Versions of Python and of the libraries a run of ``framework`` uses."""
    names = ["numpy", "pandas", "pyarrow"]
    names += ["tensorflow", "keras"] if framework == "keras" else ["torch"]
    if framework == "lightning":
        names.append("lightning")
    return package_versions(names)


def package_versions(names: list[str]) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def host_info() -> dict[str, Any]:
    return {
        "name": socket.gethostname(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": usable_cores(),
        "platform": platform.platform(),
    }


def cpu_model() -> str:
    return cpuinfo_value("model name") or platform.processor() or "unknown"


def cpuinfo_value(key: str) -> str | None:
    """The first ``key`` line's value in ``/proc/cpuinfo``; ``None`` where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def execute(run_dir: Path, on_epoch: Callable[[EpochStats], None] | None = None) -> dict:
    """Train the queued run in ``run_dir``; returns the final ``run.json``."""
    run = store.read_run(run_dir)
    spec = RunSpec.from_stored(run["spec"])
    started = time.time()
    run = store.update_run(
        run_dir,
        status="running",
        started_at=store.now_iso(),
        pid=os.getpid(),
        host=host_info(),
        versions=library_versions(spec.framework),
        progress={"epoch": 0, "epochs": spec.epochs, "val_accuracy": None},
        error=None,
    )
    stop = _StopRequests()
    handlers = {
        signal.SIGTERM: stop.terminate,
        signal.SIGINT: stop.interrupt,
        signal.SIGHUP: stop.hang_up,
    }
    previous = {  # a signal the caller ignores (``nohup`` ignores SIGHUP) stays ignored
        signum: signal.signal(signum, handler)
        for signum, handler in handlers.items()
        if signal.getsignal(signum) is not signal.SIG_IGN
    }
    rows: list[dict] = []

    def record_epoch(stats: EpochStats) -> None:
        rows.append(stats.as_dict())
        store.write_history(run_dir, run, rows)
        progress = {"epoch": stats.epoch, "epochs": spec.epochs, "val_accuracy": stats.val_accuracy}
        store.update_run(run_dir, progress=progress)
        if on_epoch is not None:
            on_epoch(stats)

    try:
        from engines.data import prepare

        engine = import_engine(spec.framework)
        data = prepare(spec)
        result = engine.train(spec, data, record_epoch)
        store.write_predictions(run_dir, data.y_test, result.test_probabilities)
        engine.save_model(result, run_dir)
        return store.update_run(
            run_dir,
            status="done",
            finished_at=store.now_iso(),
            wall_seconds=round(time.time() - started, 3),
            seconds_per_epoch=median_epoch_seconds([s.epoch_seconds for s in result.history]),
            best_epoch=result.best_epoch,
            stopped_epoch=result.stopped_epoch,
            test_loss=float(result.test_loss),
            test_accuracy=float(result.test_accuracy),
            trainable_params=int(result.trainable_params),
        )
    except (Cancelled, KeyboardInterrupt):
        return _finish(run_dir, started, rows, "cancelled", stop.reason or "cancelled")
    except Exception as err:
        if stop.reason:  # the stop signal came back as a library's error
            return _finish(run_dir, started, rows, "cancelled", stop.reason)
        trace = traceback.format_exc()
        _finish(run_dir, started, rows, "failed", failure_text(err), trace=trace)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def failure_text(err: Exception) -> str:
    """The error as a failed job shows it. A data error is written for the user, so it is
    just its message; anything else keeps its type (``RuntimeError: …``) to say what broke."""
    if isinstance(err, MnistError):
        return str(err)
    return "".join(traceback.format_exception_only(type(err), err)).strip()


def median_epoch_seconds(times: list[float]) -> float | None:
    return round(statistics.median(times), 3) if times else None


def _finish(
    run_dir: Path, started: float, rows: list[dict], status: str, error: str, trace: str = ""
) -> dict:
    """End a run that did not finish; ``stopped_epoch`` says how far it got (no best epoch:
    no model was kept)."""
    return store.update_run(
        run_dir,
        status=status,
        finished_at=store.now_iso(),
        wall_seconds=round(time.time() - started, 3),
        stopped_epoch=len(rows) or None,
        seconds_per_epoch=median_epoch_seconds([row["epoch_seconds"] for row in rows]),
        error=error,
        traceback=trace or None,
    )
