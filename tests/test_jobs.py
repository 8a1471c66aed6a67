"""The on-disk job queue: runs one at a time, survives the submitter, cancels cleanly."""

from __future__ import annotations

import time
from pathlib import Path

from engines import jobs, load_runs, store
from engines.spec import RunSpec

QUICK = {"epochs": 1, "train_limit": 500, "val_size": 200, "test_limit": 100}


def wait_for(predicate, timeout: float = 300.0, every: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


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
