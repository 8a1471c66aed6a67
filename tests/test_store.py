"""The run store: round trips, atomic files, and readers that survive broken runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from engines import load_runs, runner, store
from engines.core import EpochStats
from engines.data import MnistError
from engines.spec import RunSpec
from tests.conftest import PROJECT_ROOT


def history_rows(n: int) -> list[dict]:
    return [
        {
            "epoch": e,
            "train_loss": 1.0 / e,
            "train_accuracy": 0.9,
            "val_loss": 1.1 / e,
            "val_accuracy": 0.88,
            "lr": 1e-3,
            "epoch_seconds": 0.5,
        }
        for e in range(1, n + 1)
    ]


def test_a_run_written_to_the_store_reads_back_the_same(results_dir: Path) -> None:
    spec = RunSpec("torch", "dnn", epochs=3)
    run_dir = store.create_run(spec)
    run = store.update_run(run_dir, status="done", test_accuracy=0.97, test_loss=0.1)
    store.write_history(run_dir, run, history_rows(3))
    labels = np.array([3, 1, 4])
    probs = np.eye(10, dtype=np.float32)[[3, 7, 4]]
    store.write_predictions(run_dir, labels, probs)

    assert RunSpec.from_dict(store.read_run(run_dir)["spec"]) == spec
    history = store.read_history(run_dir)
    assert history["epoch"].tolist() == [1, 2, 3]
    assert set(history["framework"]) == {"torch"} and set(history["run_id"]) == {run["run_id"]}
    predictions = store.read_predictions(run_dir)
    assert predictions["predicted"].tolist() == [3, 7, 4]
    assert predictions["label"].tolist() == [3, 1, 4]
    assert np.allclose(predictions[store.PROB_COLUMNS].to_numpy(), probs)

    runs = load_runs()
    assert runs["run_id"].tolist() == [run["run_id"]]
    assert runs.loc[0, "test_accuracy"] == 0.97 and runs.loc[0, "status"] == "done"


def test_corrupt_run_folders_are_skipped_and_reported(results_dir: Path) -> None:
    good = store.create_run(RunSpec("keras", "cnn"))
    (results_dir / "garbage").mkdir()
    (results_dir / "garbage" / "run.json").write_text("{ not json")
    (results_dir / "empty").mkdir()
    (results_dir / "badspec").mkdir()
    (results_dir / "badspec" / "run.json").write_text(
        json.dumps({"run_id": "badspec", "status": "done", "spec": {"framework": "mxnet"}})
    )
    runs = load_runs()
    assert runs["run_dir"].tolist() == [str(good)]
    skipped = dict(runs.attrs["skipped"])
    assert set(skipped) == {"garbage", "empty", "badspec"}
    assert "unreadable run.json" in skipped["garbage"] and "no run.json" in skipped["empty"]


def test_unreadable_parquet_raises_store_error(results_dir: Path) -> None:
    run_dir = store.create_run(RunSpec("torch", "cnn"))
    (run_dir / store.HISTORY).write_bytes(b"PAR1 definitely not parquet")
    with pytest.raises(store.StoreError, match="unreadable history.parquet") as raised:
        store.read_history(run_dir)
    assert str(results_dir) not in str(raised.value)  # the run folder's name is enough


@pytest.mark.parametrize(
    ("framework", "model_file"),
    [("torch", "model.pt"), ("lightning", "model.pt"), ("keras", "model.keras"), ("torch", None)],
)
def test_a_damaged_or_missing_model_is_a_store_error_naming_the_run(
    results_dir: Path, framework: str, model_file: str | None
) -> None:
    from engines import load_predictor

    run_dir = store.create_run(RunSpec(framework, "dnn"))
    store.update_run(run_dir, status="done")
    if model_file:
        (run_dir / model_file).write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(store.StoreError, match=f"^{run_dir.name}: its model cannot be loaded"):
        load_predictor(run_dir)


@pytest.mark.parametrize(
    ("framework", "model_file"), [("torch", "model.pt"), ("keras", "model.keras")]
)
def test_a_model_file_cut_short_is_called_damaged_not_missing(
    results_dir: Path, framework: str, model_file: str
) -> None:
    """Keras says "File not found" of a truncated file, and torch blames an internal error."""
    from engines import load_predictor

    run_dir = store.create_run(RunSpec(framework, "dnn"))
    store.update_run(run_dir, status="done")
    (run_dir / model_file).write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(store.StoreError, match=f"{model_file} is damaged or cut short"):
        load_predictor(run_dir)


def runs_of_every_kind(results_dir: Path) -> list[Path]:
    """Valid runs as the code writes them: each status, and one from an older version."""
    queued = store.create_run(RunSpec("torch", "dnn"))
    running = store.create_run(RunSpec("torch", "cnn"))
    mark_running(running, os.getpid())
    store.update_run(running, progress={"epoch": 1, "epochs": 5, "val_accuracy": None})
    done = store.create_run(RunSpec("keras", "cnn"))
    mark_running(done, os.getpid())
    metrics = {"wall_seconds": 12.5, "seconds_per_epoch": None, "trainable_params": 109_770}
    store.update_run(done, status="done", test_accuracy=0.98, test_loss=0.07, **metrics)
    store.update_run(done, best_epoch=2, stopped_epoch=3, finished_at=store.now_iso())
    failed = store.create_run(RunSpec("lightning", "dnn"))
    mark_running(failed, os.getpid())
    runner._finish(failed, time.time(), [], "failed", "ValueError: boom", trace="Traceback …")
    cancelled = store.create_run(RunSpec("lightning", "cnn"))
    store.update_run(cancelled, status="cancelled", finished_at=store.now_iso(), error="cancelled")
    old_spec = RunSpec("torch", "cnn").to_dict()  # before augmentation and queued_at existed
    for name in ("augment_shift", "augment_rotate", "augment_zoom", "label_smoothing"):
        del old_spec[name]
    old = results_dir / "20240501-101500-torch-cnn-abc123"
    old.mkdir()
    store.write_json(
        old / store.RUN_JSON,
        {"run_id": old.name, "status": "done", "spec": old_spec, "test_accuracy": 0.99,
         "created_at": "2024-05-01T10:15:00Z", "host": {"cpu": "x", "cores": 2}},
    )  # fmt: skip
    return [queued, running, done, failed, cancelled, old]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"created_at": 5}, "created_at 5, not str"),
        ({"created_at": "2024-05-01"}, "created_at '2024-05-01', not a UTC time"),
        ({"created_at": "2024-05-01T10:15:00+02:00"}, "not a UTC time"),
        ({"status": "running", "pid": 1, "host": None}, "host None, not dict"),
        ({"status": "running", "pid": "1234"}, "pid '1234', not int or null"),
        ({"test_accuracy": "0.98"}, "test_accuracy '0.98', not int or float or null"),
        ({"best_epoch": True}, "best_epoch True"),
        ({"queued_at": None}, "queued_at None"),
        ({"run_id": 7}, "run_id 7, not str"),
        ({"status": "done", "finished_at": "yesterday"}, "finished_at 'yesterday', not a UTC"),
        ({"status": "failed", "error": ["boom"]}, "error ['boom'], not str or null"),
        ({"status": "running", "progress": [3, 10]}, "progress [3, 10], not dict"),
        ({"status": "running", "progress": {"epoch": 3, "epochs": 10, "val_accuracy": "98%"}},
         "progress.val_accuracy '98%', not int or float or null"),
        ({"status": "running", "progress": {"epoch": "3", "epochs": 10}}, "progress.epoch '3'"),
    ],
    ids=["int-date", "date-only", "not-utc", "null-host", "text-pid", "text-metric",
         "bool-epoch", "null-queued-at", "int-run-id", "text-finished-at", "list-error",
         "list-progress", "text-progress-accuracy", "text-progress-epoch"],
)  # fmt: skip
def test_a_run_json_with_a_wrong_typed_field_is_skipped_not_fatal(
    results_dir: Path, fields: dict, reason: str
) -> None:
    valid = runs_of_every_kind(results_dir)
    bad = store.create_run(RunSpec("torch", "dnn"))
    store.write_json(bad / store.RUN_JSON, {**store.read_run(bad), **fields})

    runs = load_runs()

    assert sorted(runs["run_dir"]) == sorted(map(str, valid))
    assert set(runs["status"]) == set(store.STATUSES)
    assert [name for name, _ in runs.attrs["skipped"]] == [bad.name]
    assert reason in runs.attrs["skipped"][0][1]
    with pytest.raises(store.StoreError, match="run.json has"):
        store.read_run(bad)


def test_a_run_json_without_created_at_is_skipped(results_dir: Path) -> None:
    run_dir = store.create_run(RunSpec("torch", "dnn"))
    run = store.read_run(run_dir)
    del run["created_at"]
    store.write_json(run_dir / store.RUN_JSON, run)
    assert load_runs().attrs["skipped"] == [
        (run_dir.name, f"{run_dir.name}: run.json has no created_at")
    ]


def test_a_copied_run_folder_is_skipped_with_its_reason(results_dir: Path) -> None:
    original = store.create_run(RunSpec("torch", "dnn"))
    store.update_run(original, status="done", test_accuracy=0.97)
    copy = Path(shutil.copytree(original, results_dir / f"{original.name}-backup"))

    runs = load_runs()

    assert runs["run_dir"].tolist() == [str(original)]
    ((name, reason),) = runs.attrs["skipped"]
    assert name == copy.name
    assert f"names run '{original.name}', not its folder" in reason


def write_history_without(run_dir: Path, column: str) -> None:
    store.write_history(run_dir, store.read_run(run_dir), history_rows(2))
    history = pq.read_table(run_dir / store.HISTORY).to_pandas()
    store.write_parquet(run_dir / store.HISTORY, history.drop(columns=[column]))


@pytest.mark.parametrize("column", ["epoch_seconds", "lr", "framework", "val_accuracy"])
def test_history_without_a_required_column_is_a_store_error(results_dir: Path, column: str) -> None:
    run_dir = store.create_run(RunSpec("torch", "cnn"))
    write_history_without(run_dir, column)
    with pytest.raises(store.StoreError, match=f"history.parquet lacks columns \\['{column}'\\]"):
        store.read_history(run_dir)


def test_history_with_text_in_a_number_column_is_a_store_error(results_dir: Path) -> None:
    run_dir = store.create_run(RunSpec("torch", "cnn"))
    store.write_history(run_dir, store.read_run(run_dir), history_rows(2))
    history = pq.read_table(run_dir / store.HISTORY).to_pandas()
    store.write_parquet(run_dir / store.HISTORY, history.assign(epoch=["1x", "2x"]))
    with pytest.raises(store.StoreError, match="history.parquet has non-numeric 'epoch' values"):
        store.read_history(run_dir)


def test_a_history_that_is_a_folder_is_named_as_such(results_dir: Path) -> None:
    run_dir = store.create_run(RunSpec("torch", "cnn"))
    (run_dir / store.HISTORY).mkdir()
    with pytest.raises(store.StoreError, match="history.parquet is a folder, not a file"):
        store.read_history(run_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["predicted"]), r"lacks columns \['predicted'\]"),
        (lambda f: f.drop(columns=["p7"]), r"lacks columns \['p7'\]"),
        (lambda f: f.assign(label=[3, 10, 4]), "has a label not a digit 0-9"),
        (lambda f: f.assign(predicted=[3, -1, 4]), "has a predicted not a digit 0-9"),
        (lambda f: f.assign(label=[3.0, 1.5, 4.0]), "has a label not a digit 0-9"),
        (lambda f: f.assign(index=[0, 1, 10_000]), "has an index outside the 10,000 test images"),
        (lambda f: f.assign(index=[0, 1, 1]), "lists a test image twice"),
        (lambda f: f.assign(p3=["a", "b", "c"]), "has non-numeric 'p3' values"),
    ],
    ids=[
        "no-predicted",
        "no-p7",
        "label-10",
        "predicted-negative",
        "label-not-whole",
        "index-past-the-test-set",
        "index-twice",
        "text-probability",
    ],  # fmt: skip
)
def test_predictions_without_a_column_or_with_a_non_digit_are_a_store_error(
    results_dir: Path, change, message: str
) -> None:
    run_dir = store.create_run(RunSpec("torch", "cnn"))
    store.write_predictions(run_dir, np.array([3, 1, 4]), np.eye(10)[[3, 7, 4]])
    frame = pq.read_table(run_dir / store.PREDICTIONS).to_pandas()
    store.write_parquet(run_dir / store.PREDICTIONS, change(frame))
    with pytest.raises(store.StoreError, match=message):
        store.read_predictions(run_dir)


def mark_running(run_dir: Path, pid: int) -> None:
    """What the runner writes when process ``pid`` on this machine starts training."""
    store.update_run(run_dir, status="running", pid=pid, host=runner.host_info())


def test_running_run_whose_process_died_reads_as_failed(results_dir: Path) -> None:
    run_dir = store.create_run(RunSpec("torch", "cnn"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mark_running(run_dir, dead.pid)
    row = load_runs().iloc[0]
    assert row["status"] == "failed" and "killed" in row["error"]


def test_recheck_running_notices_a_process_that_died_after_the_table_was_read(
    results_dir: Path,
) -> None:
    run_dir = store.create_run(RunSpec("torch", "cnn"))
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    mark_running(run_dir, worker.pid)
    table = load_runs()  # as a cache would keep it
    assert table.iloc[0]["status"] == "running"
    assert store.recheck_running(table).iloc[0]["status"] == "running"  # still alive

    worker.kill()
    worker.wait()
    rechecked = store.recheck_running(table)
    assert rechecked.iloc[0]["status"] == "failed" and "killed" in rechecked.iloc[0]["error"]
    assert table.iloc[0]["status"] == "running"  # the cached table itself is left alone


def test_delete_refuses_folders_outside_the_store(results_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    with pytest.raises(store.StoreError):
        store.delete_run(outside)
    assert outside.exists()
    run_dir = store.create_run(RunSpec("torch", "cnn"))
    store.delete_run(run_dir)
    assert not run_dir.exists()


def test_notes_of_a_finished_run_can_be_rewritten_and_show_on_the_leaderboard(
    results_dir: Path,
) -> None:
    run_dir = store.create_run(RunSpec("torch", "dnn", notes="first try"))
    store.update_run(run_dir, status="done", test_accuracy=0.97, test_loss=0.1)

    store.set_notes(run_dir, "  lr 3e-3: too high  ")

    assert store.read_run(run_dir)["spec"]["notes"] == "lr 3e-3: too high"
    assert load_runs()["spec_notes"].tolist() == ["lr 3e-3: too high"]
    assert RunSpec.from_stored(store.read_run(run_dir)["spec"]).epochs == 40  # rest untouched


def test_notes_are_refused_while_the_job_still_owns_the_run_or_when_too_long(
    results_dir: Path,
) -> None:
    queued = store.create_run(RunSpec("torch", "dnn", notes="keep"))
    with pytest.raises(store.StoreError, match="still queued"):
        store.set_notes(queued, "new")
    finished = store.create_run(RunSpec("torch", "dnn", notes="keep"), status="cancelled")
    with pytest.raises(store.StoreError, match="keep them to 500"):
        store.set_notes(finished, "x" * 501)
    assert {store.read_run(d)["spec"]["notes"] for d in (queued, finished)} == {"keep"}


def test_killed_training_leaves_no_done_run_and_no_broken_parquet(results_dir: Path) -> None:
    """SIGKILL in the middle of training: the run never reads as done, every file reads."""
    spec = RunSpec("torch", "cnn", epochs=30, train_limit=3000, val_size=500, test_limit=200)
    run_dir = store.create_run(spec)
    command = [sys.executable, "-m", "engines", "train", "--run-dir", str(run_dir), "--quiet"]
    child = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    for line in child.stdout:  # wait until at least one epoch has been written
        if "epoch 2/" in line:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    time.sleep(0.1)

    run = store.read_run(run_dir)
    assert run["status"] == "running"  # what the dead process last wrote…
    row = load_runs().iloc[0]
    assert row["status"] == "failed"  # …but readers see that it is not alive
    history = store.read_history(run_dir)
    assert len(history) >= 1
    for path in run_dir.glob("*.parquet"):
        pq.read_table(path)  # readable, not half-written
    assert store.model_path(run_dir) is None  # no model from an unfinished run


def test_atomic_write_never_leaves_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "history.parquet"
    store.write_parquet(target, pd.DataFrame({"a": [1, 2]}))

    class Boom(Exception):
        pass

    def failing_write(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise Boom

    with pytest.raises(Boom):
        store.atomic_write(target, failing_write)
    assert pq.read_table(target).to_pandas()["a"].tolist() == [1, 2]
    assert os.listdir(tmp_path) == ["history.parquet"]


def test_store_files_are_as_readable_as_the_umask_allows_for_a_shared_store(
    results_dir: Path,
) -> None:
    umask = os.umask(0o022)  # read it (the test process has one thread)
    os.umask(umask)
    run_dir = store.create_run(RunSpec("torch", "dnn"), results_dir)
    store.write_parquet(run_dir / "history.parquet", pd.DataFrame({"a": [1]}))
    for name in ("run.json", "history.parquet"):
        assert (run_dir / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_run_failing_on_damaged_mnist_files_records_the_message_without_a_class_name(
    results_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    for kind in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"):
        (mnist / f"{kind}-ubyte.gz").write_bytes(b"not gzip")
    monkeypatch.setenv("MNIST_DIR", str(mnist))
    run_dir = store.create_run(RunSpec("torch", "dnn", epochs=1))

    with pytest.raises(MnistError):
        runner.execute(run_dir)

    run = store.read_run(run_dir)
    assert run["status"] == "failed"
    assert run["error"].startswith(str(mnist / "train-images-idx3-ubyte.gz"))
    assert "MnistError" in run["traceback"]  # the full story stays in run.json


def test_a_hang_up_ignored_by_nohup_stays_ignored_while_training(
    results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``nohup python -m engines train …`` must keep training after its terminal closes."""
    seen = []

    class HangUpEngine:
        @staticmethod
        def train(spec, data, on_epoch):
            seen.append(signal.getsignal(signal.SIGHUP))
            os.kill(os.getpid(), signal.SIGHUP)  # the terminal closes
            raise ValueError("stopped here by the test")

    monkeypatch.setattr(runner, "import_engine", lambda framework: HangUpEngine)
    run_dir = store.create_run(RunSpec("torch", "dnn", epochs=1, train_limit=100))
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with pytest.raises(ValueError, match="stopped here by the test"):
            runner.execute(run_dir)
    finally:
        signal.signal(signal.SIGHUP, previous)

    assert seen == [signal.SIG_IGN]
    assert store.read_run(run_dir)["status"] == "failed"  # the test's error, not a cancel


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_reworded_by_a_library_still_records_the_run_cancelled(
    signum: int, results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keras has turned a Ctrl-C mid-step into "ValueError: None values not supported"."""

    class RewordingEngine:
        @staticmethod
        def train(spec, data, on_epoch):
            try:
                os.kill(os.getpid(), signum)
                time.sleep(5)  # the handler raises here
            except BaseException as err:
                raise ValueError("None values not supported") from err

    monkeypatch.setattr(runner, "import_engine", lambda framework: RewordingEngine)
    run_dir = store.create_run(RunSpec("keras", "dnn", epochs=1, train_limit=100))
    # Under `nohup` SIGHUP arrives ignored, and the runner rightly leaves an ignored signal
    # alone: give this test the default disposition, whatever shell started it.
    previous = signal.signal(signum, signal.SIG_DFL)
    try:
        run = runner.execute(run_dir)
    finally:
        signal.signal(signum, previous)

    assert run["status"] == "cancelled"
    assert run["error"].startswith("cancelled during training")


@pytest.mark.parametrize("ending", ["cancelled", "failed"])
def test_a_run_ended_mid_training_records_how_many_epochs_it_trained(
    ending: str, results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class TwoEpochsThenEnd:
        @staticmethod
        def train(spec, data, on_epoch):
            for epoch, seconds in ((1, 2.0), (2, 4.0)):
                on_epoch(EpochStats(epoch, 0.5, 0.8, 0.4, 0.85, 1e-3, seconds))
            if ending == "cancelled":
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises here
            raise ValueError("broke after epoch 2")

    monkeypatch.setattr(runner, "import_engine", lambda framework: TwoEpochsThenEnd)
    run_dir = store.create_run(RunSpec("torch", "dnn", epochs=10, train_limit=100))

    try:
        runner.execute(run_dir)
    except ValueError:
        assert ending == "failed"

    run = store.read_run(run_dir)
    assert run["status"] == ending
    assert run["stopped_epoch"] == 2 and run["seconds_per_epoch"] == 3.0
    assert run.get("best_epoch") is None  # no model was kept: there is no best epoch to load
