"""Training jobs: a queue that lives on disk, drained by one background worker per store.

A job is simply a run folder whose ``run.json`` says ``queued``. :func:`submit` writes the
folders and makes sure a worker is running; the worker (``python -m engines worker``) starts
``python -m engines train --run-dir …`` for queued runs, oldest first, at most
``max_parallel`` at a time, and exits when the queue is empty. Because all state is in the
store, a browser refresh, a second tab or a second dashboard sees the same jobs, and a
dashboard restart loses nothing.

Only one worker drains a store at a time: it holds an exclusive ``flock`` on
``<store>/.worker.lock``. A worker that finds the lock taken exits at once: the holder will
pick up the new runs. Before exiting, the holder releases the lock and looks at the queue one
last time, so a run queued in that instant is never stranded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from engines import store
from engines.data import PROJECT_ROOT
from engines.spec import RunSpec

LOCK_NAME = ".worker.lock"
LOG_NAME = "train.log"
WORKER_LOG_NAME = ".worker.log"
DEFAULT_MAX_PARALLEL = 1  # training uses every core; more than one job only on bigger machines
POLL_SECONDS = 0.5
# A training process whose run is recorded as ended is killed after this long: one cancelled
# Keras job was seen waiting on a lock at exit for over 30 s, holding up the whole queue.
LINGER_SECONDS = 60


# --- what the dashboard and CLI call -----------------------------------------------------
def submit(
    specs: Iterable[RunSpec],
    results_dir: str | Path | None = None,
    max_parallel: int = DEFAULT_MAX_PARALLEL,
) -> list[Path]:
    """Queue one run per spec and make sure a worker is draining the queue.

    All or nothing: if one cannot be created (a full disk, Ctrl-C), those made before it are
    cancelled (a worker already draining the store may have taken one), so no job is left
    queued that nobody follows.
    """
    root = store.results_dir(results_dir)
    run_dirs: list[Path] = []
    try:
        for spec in specs:
            run_dirs.append(store.create_run(spec, root, status="queued"))
    except BaseException:
        for run_dir in run_dirs:
            with contextlib.suppress(store.StoreError, CancelRefused, OSError):
                cancel(run_dir)
        raise
    if run_dirs:
        start_worker(root, max_parallel)
    return run_dirs


def active_twins(
    specs: Iterable[RunSpec], results_dir: str | Path | None = None
) -> dict[RunSpec, str]:
    """The specs a queued or running job in the store already trains, each with that job's
    run id. Queueing one again would train the very same run twice (same data, same seed):
    a double click, not a wish, so the dashboard skips it and says so."""
    wanted = set(specs)
    twins: dict[RunSpec, str] = {}
    for run_dir in store.iter_run_dirs(results_dir):
        try:
            run = store.read_run(run_dir)
        except store.StoreError:
            continue  # the dashboard lists unreadable folders elsewhere
        if store.effective_status(run) not in store.ACTIVE_STATUSES:
            continue
        spec = RunSpec.from_stored(run["spec"])
        if spec in wanted:
            twins.setdefault(spec, run["run_id"])
    return twins


class CancelRefused(Exception):
    """A running job that this machine cannot stop; the message says why, for the user."""


def cancel(run_dir: str | Path) -> str:
    """Cancel a queued or running job; returns what was done, in words.

    A queued run is cancelled from any machine sharing the store. A running one is stopped
    only on the machine training it: its pid means nothing elsewhere (raises CancelRefused).
    """
    run = store.read_run(run_dir)
    status = store.effective_status(run)
    if status == "queued":
        finished = store.now_iso()
        store.update_run(run_dir, status="cancelled", finished_at=finished, error="cancelled")
        return "cancelled before it started"
    if status == "running":
        return _stop(run)
    return f"nothing to cancel: the run is {status}"


def _stop(run: dict) -> str:
    """Send SIGTERM to a running job's training process, if it runs on this machine."""
    host = run.get("host", {}).get("name")
    if host != socket.gethostname():
        raise CancelRefused(f"running on {host or 'an unknown machine'}; cancel it there")
    try:
        os.kill(int(run["pid"]), signal.SIGTERM)
    except ProcessLookupError:
        return "the process had already ended"
    except OSError as err:
        raise CancelRefused(f"could not stop process {run['pid']}: {err.strerror}") from err
    return "stop signal sent"


def start_worker(results_dir: str | Path, max_parallel: int = DEFAULT_MAX_PARALLEL) -> None:
    """Start a detached worker process (it exits at once if one is already running)."""
    root = store.results_dir(results_dir).resolve()  # the worker runs in the project folder
    root.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "engines", "--results-dir", str(root), "worker"]
    command += ["--max-parallel", str(max_parallel)]
    with open(root / WORKER_LOG_NAME, "ab") as log:
        subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the dashboard's own restarts
        )


# --- the worker --------------------------------------------------------------------------
def queued_runs(results_dir: Path) -> list[Path]:
    """Queued run folders, in the order the worker takes them (:data:`QUEUE_ORDER`)."""
    found = []
    for run_dir in store.iter_run_dirs(results_dir):
        try:
            run = store.read_run(run_dir)
        except store.StoreError:
            continue
        if run["status"] == "queued":
            found.append((run.get("queued_at", 0.0), run.get("created_at", ""), run_dir))
    return [run_dir for *_, run_dir in sorted(found)]


# The worker's order, as columns of engines.load_runs: queue time (sub-second, so a batch
# keeps its order), then creation time.
QUEUE_ORDER = ["queued_at", "created_at"]


def run_worker(results_dir: str | Path, max_parallel: int = DEFAULT_MAX_PARALLEL) -> int:
    """Drain the queue of ``results_dir``; returns the number of jobs this worker started."""
    root = store.results_dir(results_dir)
    root.mkdir(parents=True, exist_ok=True)
    started = 0
    while True:
        with open(root / LOCK_NAME, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return started  # another worker holds the store
            started += _drain(root, max_parallel)
            fcntl.flock(lock, fcntl.LOCK_UN)
        if not queued_runs(root):  # last look after releasing: nothing stranded
            return started


def _drain(root: Path, max_parallel: int) -> int:
    children: dict[Path, subprocess.Popen] = {}
    ended_at: dict[Path, float] = {}  # when a live child's run was first seen finished
    started = 0
    while True:
        for run_dir, child in list(children.items()):
            if child.poll() is not None:
                _settle(run_dir, child.returncode)
                del children[run_dir]
                ended_at.pop(run_dir, None)
            elif _has_ended(run_dir):
                ended = ended_at.setdefault(run_dir, time.monotonic())
                if time.monotonic() - ended > LINGER_SECONDS:
                    child.kill()  # its run is recorded; only the process hangs on
        waiting = [d for d in queued_runs(root) if d not in children]
        while waiting and len(children) < max_parallel:
            run_dir = waiting.pop(0)
            children[run_dir] = _launch(run_dir)
            started += 1
        if not children and not waiting:
            return started
        time.sleep(POLL_SECONDS)


def _has_ended(run_dir: Path) -> bool:
    """Whether the run's ``run.json`` has its final status (or the run was deleted)."""
    try:
        return store.read_run(run_dir)["status"] not in store.ACTIVE_STATUSES
    except store.StoreError:
        return True


def _launch(run_dir: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "engines", "train", "--run-dir", str(run_dir), "--quiet"]
    with open(run_dir / LOG_NAME, "ab") as log:
        return subprocess.Popen(
            command, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )


def _settle(run_dir: Path, returncode: int) -> None:
    """Make sure a finished child left a final status (it may have died before writing one)."""
    try:
        run = store.read_run(run_dir)
    except store.StoreError:
        return  # deleted while running
    if run["status"] in store.ACTIVE_STATUSES:
        if returncode == -signal.SIGTERM:
            status, error = "cancelled", "cancelled"
        else:
            status, error = "failed", f"training process exited with code {returncode}"
        store.update_run(run_dir, status=status, finished_at=store.now_iso(), error=error)
