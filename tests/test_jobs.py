"""The on-disk job queue: runs one at a time, survives the submitter, cancels cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engines import jobs, load_runs, store
from engines.data import PROJECT_ROOT
from engines.spec import RunSpec
from tests.conftest import run_cli, wait_for

QUICK = {"epochs": 1, "train_limit": 500, "val_size": 200, "test_limit": 100}


def statuses(results_dir: Path) -> dict[str, str]:
    runs = load_runs(results_dir)
    return dict(zip(runs["run_id"], runs["status"], strict=True))


def test_submitted_jobs_run_one_at_a_time_to_done(results_dir: Path) -> None:
    specs = [RunSpec("torch", "dnn", **QUICK), RunSpec("lightning", "dnn", **QUICK)]
    run_dirs = jobs.submit(specs, results_dir)
    assert {store.read_run(d)["status"] for d in run_dirs} <= {"queued", "running"}
    assert wait_for(lambda: set(statuses(results_dir).values()) == {"done"})
    first, second = (store.read_run(d) for d in run_dirs)
    assert first["finished_at"] <= second["started_at"]  # concurrency 1: never overlapping
    assert (run_dirs[0] / jobs.LOG_NAME).exists()


def test_cancel_queued_job_never_starts_it(results_dir: Path) -> None:
    # A first job that cannot finish on its own before the cancel arrives, even on an idle
    # machine (500 images take ~0.2 s per epoch): 500 epochs, early stopping off.
    long_job = RunSpec("torch", "cnn", **{**QUICK, "epochs": 500, "es_patience": 500})
    run_dirs = jobs.submit([long_job, RunSpec("torch", "dnn", **QUICK)], results_dir)
    assert jobs.cancel(run_dirs[1]) == "cancelled before it started"
    # Cancel once training is under way (first epoch written), not while it is importing.
    assert wait_for(
        lambda: (store.read_run(run_dirs[0]).get("progress") or {}).get("epoch", 0) >= 1
    )
    assert store.read_run(run_dirs[0])["status"] == "running"
    assert jobs.cancel(run_dirs[0]) == "stop signal sent"
    assert wait_for(lambda: store.read_run(run_dirs[0])["status"] == "cancelled", timeout=60)
    time.sleep(2)  # give a wrongly started second job the chance to show up
    second = store.read_run(run_dirs[1])
    assert second["status"] == "cancelled" and "started_at" not in second


def test_a_second_worker_leaves_the_queue_to_the_first(results_dir: Path) -> None:
    (results_dir / jobs.LOCK_NAME).touch()
    import fcntl

    with open(results_dir / jobs.LOCK_NAME) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        run_dir = store.create_run(RunSpec("torch", "dnn", **QUICK), results_dir)
        assert jobs.run_worker(results_dir) == 0  # lock taken: returns at once
        assert store.read_run(run_dir)["status"] == "queued"
    jobs.start_worker(results_dir)  # lock free again: the queue drains
    assert wait_for(lambda: store.read_run(run_dir)["status"] == "done")


def test_cancelling_a_finished_run_changes_nothing(results_dir: Path) -> None:
    run_dir = store.create_run(RunSpec("torch", "dnn"), results_dir, status="done")
    assert jobs.cancel(run_dir) == "nothing to cancel: the run is done"
    assert store.read_run(run_dir)["status"] == "done"


@pytest.fixture
def bystander():
    """A live local process with a pid that a wrong cancel would kill."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def running_run(results_dir: Path, pid: int, host: str) -> Path:
    """A run.json as the runner writes it for a job training on ``host`` as ``pid``."""
    run_dir = store.create_run(RunSpec("torch", "dnn"), results_dir, status="running")
    store.update_run(run_dir, pid=pid, host={"name": host})
    return run_dir


def still_alive(process: subprocess.Popen) -> bool:
    try:
        process.wait(timeout=1)
    except subprocess.TimeoutExpired:
        return True
    return False


def test_cancel_refuses_a_job_running_on_another_machine_and_signals_nothing(
    results_dir: Path, bystander: subprocess.Popen
) -> None:
    run_dir = running_run(results_dir, bystander.pid, host="other-machine")

    with pytest.raises(jobs.CancelRefused, match="running on other-machine; cancel it there"):
        jobs.cancel(run_dir)

    assert still_alive(bystander)  # the same pid here is not that job
    assert store.read_run(run_dir)["status"] == "running"


def test_cancel_reports_a_stop_signal_it_may_not_send_instead_of_raising_it(
    results_dir: Path, bystander: subprocess.Popen, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = running_run(results_dir, bystander.pid, host=socket.gethostname())
    real_kill = os.kill

    def kill_not_permitted(pid: int, sig: int) -> None:
        if sig == signal.SIGTERM:
            raise PermissionError(1, "Operation not permitted")
        real_kill(pid, sig)  # liveness probes (signal 0) as usual

    monkeypatch.setattr(os, "kill", kill_not_permitted)

    with pytest.raises(jobs.CancelRefused, match="Operation not permitted"):
        jobs.cancel(run_dir)


def test_active_twins_are_queued_or_running_jobs_with_the_very_same_spec(tmp_path: Path) -> None:
    queued = RunSpec("torch", "dnn", epochs=1)
    finished = RunSpec("torch", "cnn", epochs=1)
    queued_dir = store.create_run(queued, tmp_path, status="queued")
    store.update_run(store.create_run(finished, tmp_path, status="queued"), status="done")
    other_seed = RunSpec("torch", "dnn", epochs=1, seed=7)
    same_but_notes = RunSpec("torch", "dnn", epochs=1, notes="again")

    twins = jobs.active_twins([queued, finished, other_seed, same_but_notes], tmp_path)

    assert twins == {queued: queued_dir.name}  # notes do not make another run


def test_a_grid_waits_for_the_job_already_training_instead_of_training_alongside(
    results_dir: Path,
) -> None:
    # A dashboard job that trains for a while (~0.2 s per epoch on 500 images).
    long_job = RunSpec("torch", "cnn", **{**QUICK, "epochs": 40, "es_patience": 40})
    [dashboard_job] = jobs.submit([long_job], results_dir)
    assert wait_for(
        lambda: (store.read_run(dashboard_job).get("progress") or {}).get("epoch", 0) >= 1
    )
    quick = ["--epochs", "1", "--train-limit", "500", "--val-size", "200", "--test-limit", "100"]

    result = run_cli("grid", "--framework", "torch", "--arch", "dnn", *quick, timeout=600)

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    first = store.read_run(dashboard_job)
    [grid_run] = [r for r in load_runs(results_dir).run_id if r != dashboard_job.name]
    second = store.read_run(results_dir / grid_run)
    assert first["status"] == second["status"] == "done"
    assert first["finished_at"] <= second["started_at"]  # one training at a time, not two


def start_grid(*options: str) -> subprocess.Popen:
    """``python -m engines grid --framework torch …`` (both architectures) in the background,
    its output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "engines", "grid", "--framework", "torch", *options],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_ctrl_c_on_a_grid_cancels_its_unfinished_runs(results_dir: Path) -> None:
    long = ["--epochs", "40", "--es-patience", "40", "--train-limit", "500", "--val-size", "200"]
    grid = start_grid(*long)
    try:
        assert wait_for(lambda: "running" in statuses(results_dir).values())
        grid.send_signal(signal.SIGINT)
        _, stderr = grid.communicate(timeout=60)
    finally:
        grid.kill()
    assert grid.returncode == 130
    assert "cancelled" in stderr
    assert wait_for(lambda: set(statuses(results_dir).values()) == {"cancelled"}, timeout=60)
    assert len(statuses(results_dir)) == 2  # torch/dnn and torch/cnn, neither left training
    assert "cancelled during training" in set(load_runs(results_dir)["error"])  # plain words


def test_a_grid_run_deleted_meanwhile_is_reported_and_the_rest_compared(
    results_dir: Path,
) -> None:
    quick = ["--epochs", "2", "--train-limit", "500", "--val-size", "200", "--test-limit", "100"]
    grid = start_grid(*quick)
    try:
        assert wait_for(lambda: len(statuses(results_dir)) == 2)
        queued = [d for d in jobs.queued_runs(results_dir) if "-cnn-" in d.name]
        for run_dir in queued:  # what the Runs page's Cancel and Delete do
            jobs.cancel(run_dir)
            store.delete_run(run_dir)
        stdout, stderr = grid.communicate(timeout=600)
    finally:
        grid.kill()
    assert queued, "the cnn run had already started"
    assert "Traceback" not in stderr
    assert f"deleted meanwhile: {queued[0].name}" in stdout
    table = stdout.split("deleted meanwhile")[1]
    assert "dnn" in table and "done" in table  # the other run is still compared
    assert grid.returncode == 1  # not every run of the grid finished


def test_a_grid_with_a_relative_store_path_trains_in_that_store(tmp_path: Path) -> None:
    """The worker runs in the project folder: it must get the store's absolute path."""
    quick = ["--epochs", "1", "--train-limit", "500", "--val-size", "200", "--test-limit", "100"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "engines", "--results-dir", "relative-store", "grid"]
        + ["--framework", "torch", "--arch", "dnn", *quick],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,  # a worker draining the wrong folder never ends,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert set(statuses(elsewhere / "relative-store").values()) == {"done"}


def test_a_batch_that_cannot_be_queued_whole_leaves_no_job_queued(
    results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_create, created = store.create_run, []

    def create_failing_second_time(*args, **kwargs):
        if created:
            raise OSError(28, "No space left on device")
        created.append(real_create(*args, **kwargs))
        return created[-1]

    monkeypatch.setattr(store, "create_run", create_failing_second_time)
    monkeypatch.setattr(jobs, "start_worker", lambda *args, **kwargs: None)
    with pytest.raises(OSError, match="No space left"):
        jobs.submit([RunSpec("torch", "dnn"), RunSpec("torch", "cnn")], results_dir)

    assert statuses(results_dir) == {created[0].name: "cancelled"}


def test_a_training_process_that_lingers_after_its_run_ended_is_stopped(
    results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job whose run.json says cancelled but whose process never exits must not hold the
    queue (one at a time) for ever."""
    run_dir = store.create_run(RunSpec("torch", "dnn"), results_dir)
    hanging = []

    def launch_a_process_that_records_the_end_and_hangs(run_dir: Path) -> subprocess.Popen:
        store.update_run(run_dir, status="cancelled", error="cancelled during training")
        hanging.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]))
        return hanging[-1]

    monkeypatch.setattr(jobs, "_launch", launch_a_process_that_records_the_end_and_hangs)
    monkeypatch.setattr(jobs, "LINGER_SECONDS", 1)

    assert jobs._drain(results_dir, max_parallel=1) == 1  # returns: the queue is free again

    assert hanging[0].poll() is not None  # the process is gone
    assert store.read_run(run_dir)["status"] == "cancelled"  # its record is kept as it was
