"""The command line as a user meets it: complete runs, and one clear line for mistakes."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engines import load_predictor, load_runs, store
from engines.spec import RunSpec
from tests.conftest import PROJECT_ROOT, run_cli, wait_for

QUICK = ["--epochs", "1", "--train-limit", "1000", "--val-size", "300", "--test-limit", "300"]


def test_train_writes_a_complete_run(results_dir: Path) -> None:
    result = run_cli("train", "--framework", "torch", "--arch", "dnn", *QUICK)
    assert result.returncode == 0, result.stderr
    assert "done: test accuracy" in result.stdout
    (run_dir,) = store.iter_run_dirs(results_dir)
    run = store.read_run(run_dir)
    assert run["status"] == "done" and run["spec"]["train_limit"] == 1000
    assert run["versions"]["torch"] and run["host"]["cpu"]
    assert len(store.read_history(run_dir)) == 1
    assert len(store.read_predictions(run_dir)) == 300
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    assert load_predictor(run_dir).predict_proba(images).shape == (2, 10)


def test_train_reads_a_spec_file(results_dir: Path, tmp_path: Path) -> None:
    spec = {"framework": "lightning", "arch": "dnn", "epochs": 1, "train_limit": 500,
            "val_size": 200, "test_limit": 100, "scheduler": "none"}  # fmt: skip
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    result = run_cli("train", "--spec", str(path))
    assert result.returncode == 0, result.stderr
    (run_dir,) = store.iter_run_dirs(results_dir)
    assert store.read_run(run_dir)["spec"]["scheduler"] == "none"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--framework", "tf", "--arch", "cnn"], "invalid choice: 'tf'"),
        (["train", "--framework", "torch", "--arch", "cnn", "--lr", "-1"], "lr: must be in"),
        (["train", "--framework", "torch", "--arch", "cnn", "--epochs", "two"], "invalid int"),
        (["train", "--framework", "torch"], "give --framework and --arch"),
        (["train", "--spec", "/nonexistent.json"], "--spec: cannot read"),
        (["grid", "--arch", "rnn"], "invalid choice: 'rnn'"),
        (["grid", "--batch-size", "0"], "batch_size: must be between"),
        (["grid", "--seeds", "11"], "seeds: must be between 1 and 10"),
        (["grid", "--seed", "2147483647", "--seeds", "2"], "would end at 2147483648, above"),
        (["fly"], "invalid choice: 'fly'"),
        (["train", "--run-dir", "/nonexistent-run"], "--run-dir: "),
        (["worker", "--max-parallel", "0"], "must be at least 1"),
        (["--results-dir", "", "runs"], "--results-dir: empty path"),
        (["train", "--spec", "s.json", "--epochs", "5"], "whole spec; leave out --epochs"),
        (["train", "--run-dir", "r", "--framework", "keras"], "leave out --framework"),
        (["train", "--spec", "s.json", "--seed", "42"], "leave out --seed"),  # even a default
    ],
)
def test_bad_option_exits_2_with_one_clear_line(
    results_dir: Path, args: list[str], message: str
) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "error:" in lines[0]
    assert store.iter_run_dirs(results_dir) == []  # nothing half-created


def test_train_run_dir_of_a_finished_run_is_a_wrong_value(results_dir: Path) -> None:
    run_dir = store.create_run(RunSpec("torch", "dnn"))
    store.update_run(run_dir, status="cancelled")
    result = run_cli("train", "--run-dir", str(run_dir))
    assert result.returncode == 2
    assert f"--run-dir: {run_dir} is cancelled, not queued" in result.stderr
    assert store.read_run(run_dir)["status"] == "cancelled"


def test_a_results_folder_that_cannot_be_written_is_one_clear_line(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "results"
    not_a_folder.write_text("a file where the store should be")
    for command in (["train", "--framework", "torch", "--arch", "dnn"], ["grid"]):
        result = run_cli("--results-dir", str(not_a_folder), *command, *QUICK)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            f"error: cannot write runs to {not_a_folder} (Not a directory)"
        ]


def test_ctrl_c_as_train_starts_leaves_no_run_training(results_dir: Path) -> None:
    """Interrupted in its first moments (creating the run, imports, before the runner takes
    over) ``train`` leaves its run cancelled (or no run at all), never "running" with no
    process behind it."""
    train = subprocess.Popen(
        [sys.executable, "-m", "engines", "train", "--framework", "torch", "--arch", "cnn",
         *QUICK],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_for(lambda: store.iter_run_dirs(results_dir), timeout=60, every=0.01)
        train.send_signal(signal.SIGINT)
        train.communicate(timeout=60)
    finally:
        train.kill()
    assert train.returncode == 130
    runs = load_runs(results_dir)
    assert runs.attrs["skipped"] == []  # no half-made folder
    assert set(runs["status"]) <= {"cancelled", "failed"}  # failed: its process is gone


def test_help_documents_every_hyper_parameter() -> None:
    result = run_cli("train", "--help")
    assert result.returncode == 0
    for field in RunSpec("torch", "dnn").to_dict():
        assert f"--{field.replace('_', '-')}" in result.stdout


def test_train_summary_says_when_early_stopping_ended_before_the_budget(tmp_path: Path) -> None:
    from engines.__main__ import summary_line

    run = {"status": "done", "spec": {"epochs": 30}, "best_epoch": 4, "stopped_epoch": 9,
           "test_accuracy": 0.99, "test_loss": 0.03, "wall_seconds": 90.0,
           "seconds_per_epoch": 10.0}  # fmt: skip

    assert "best epoch 4/9, stopped early at 9 of 30" in summary_line(run, tmp_path)
    assert "stopped early" not in summary_line({**run, "stopped_epoch": 30}, tmp_path)


def test_train_summary_of_a_cancelled_run_says_how_far_it_got(tmp_path: Path) -> None:
    from engines.__main__ import summary_line

    run = {"status": "cancelled", "error": "cancelled during training", "stopped_epoch": 3}

    assert summary_line(run, tmp_path).startswith("cancelled after 3 epoch(s): cancelled during")
    assert summary_line({**run, "stopped_epoch": None}, tmp_path).startswith("cancelled: ")


def test_runs_lists_the_store_with_readable_numbers(results_dir: Path) -> None:
    store.create_run(RunSpec("keras", "cnn"))
    done = store.create_run(RunSpec("torch", "dnn"))
    store.update_run(
        done, status="done", test_accuracy=0.98765, trainable_params=109770, best_epoch=7
    )

    result = run_cli("runs")

    assert result.returncode == 0
    queued_line, done_line = sorted(result.stdout.splitlines()[1:])  # keras before torch
    assert "keras-cnn" in queued_line and "queued" in queued_line
    assert "98.77%" in done_line and "109,770" in done_line
    assert "NaN" not in result.stdout and "109770.0" not in result.stdout


def test_runs_by_seed_gives_one_line_per_setting_with_its_mean_and_spread(
    results_dir: Path,
) -> None:
    for seed, accuracy in [(1, 0.97), (2, 0.98), (3, 0.99)]:
        done = store.create_run(RunSpec("torch", "dnn", seed=seed))
        store.update_run(done, status="done", test_accuracy=accuracy, seconds_per_epoch=1.5)
    other = store.create_run(RunSpec("torch", "dnn", lr=0.01))
    store.update_run(other, status="done", test_accuracy=0.95)

    result = run_cli("runs", "--by-seed")

    assert result.returncode == 0, result.stderr
    header, three_seeds, one_seed = result.stdout.splitlines()
    assert header.split()[:5] == ["framework", "arch", "learning", "rate", "runs"]
    assert three_seeds.split() == [
        "torch", "dnn", "0.003", "3", "1,", "2,", "3",
        "98.00%", "1.00", "97.00%", "99.00%", "1.50",  # std in points, as on Home
    ]  # fmt: skip
    lr, runs, seeds = one_seed.split()[2:5]
    assert (float(lr), runs, seeds) == (0.01, "1", "42") and "-" in one_seed.split()  # no std


def test_runs_piped_into_a_reader_that_stops_early_ends_quietly(results_dir: Path) -> None:
    store.create_run(RunSpec("torch", "dnn"))
    runs = subprocess.Popen(
        [sys.executable, "-m", "engines", "runs"], cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    runs.stdout.close()  # like ``runs | true``: gone before the table is written

    stderr = runs.stderr.read()
    assert runs.wait(timeout=120) == 0
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_runs_says_why_each_failed_run_failed(results_dir: Path) -> None:
    run_dir = store.create_run(RunSpec("torch", "dnn"), results_dir, status="queued")
    store.update_run(run_dir, status="failed", error="/data/mnist: not the published MNIST")

    result = run_cli("runs")

    assert f"failed {run_dir.name}: /data/mnist: not the published MNIST" in result.stderr


def test_runs_names_each_unreadable_folder_once_with_its_reason(results_dir: Path) -> None:
    (results_dir / "stray").mkdir()

    result = run_cli("runs")

    assert result.returncode == 0
    assert result.stderr.strip() == "skipped stray: no run.json"


def test_runs_warns_about_a_done_run_missing_the_files_the_pages_need(results_dir: Path) -> None:
    done = store.create_run(RunSpec("torch", "dnn"))
    store.update_run(done, status="done", test_accuracy=0.9)
    (done / "model.pt").write_bytes(b"weights")

    result = run_cli("runs")

    assert result.returncode == 0 and done.name in result.stdout  # still listed
    assert result.stderr.strip() == (
        f"incomplete {done.name}: done but has no history.parquet, test_predictions.parquet"
    )


def test_export_then_import_carries_finished_runs_to_another_store(
    trained_store: Path, results_dir: Path, tmp_path: Path
) -> None:
    bundle_path = tmp_path / "team.zip"

    exported = run_cli("--results-dir", str(trained_store), "export", "-o", str(bundle_path))
    imported = run_cli("import", str(bundle_path))
    again = run_cli("import", str(bundle_path))

    assert exported.returncode == 0, exported.stderr
    assert imported.returncode == 0, imported.stderr
    names = [run_dir.name for run_dir in store.iter_run_dirs(trained_store)]
    assert [run_dir.name for run_dir in store.iter_run_dirs(results_dir)] == names
    assert load_runs(results_dir)["test_accuracy"].notna().all()
    assert again.returncode == 0 and f"already here, unchanged: {names[0]}" in again.stdout


def test_export_of_a_named_unfinished_run_writes_nothing_and_says_why(
    results_dir: Path, tmp_path: Path
) -> None:
    queued = store.create_run(RunSpec("torch", "dnn"))
    bundle_path = tmp_path / "team.zip"

    result = run_cli("export", queued.name[-6:], "-o", str(bundle_path))

    assert result.returncode == 1
    assert f"left out {queued.name}: it is still queued" in result.stderr
    assert not bundle_path.exists()


@pytest.mark.parametrize("parent", ["typo", "a-file"])
def test_export_into_a_folder_that_is_not_there_creates_nothing(
    results_dir: Path, tmp_path: Path, parent: str
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    result = run_cli("export", "-o", str(tmp_path / parent / "team.zip"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: --output: {tmp_path / parent} is not a folder"
    assert not (tmp_path / "typo").exists()


def test_export_of_a_store_without_finished_runs_says_so_in_its_own_words(
    results_dir: Path, tmp_path: Path
) -> None:
    store.create_run(RunSpec("torch", "dnn"))  # queued
    result = run_cli("export", "-o", str(tmp_path / "team.zip"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: no finished runs to export in {results_dir}"
    )


def test_export_of_every_run_fills_one_bundle_and_names_the_runs_left_for_another(
    trained_store: Path, tmp_path: Path
) -> None:
    from engines import bundle

    run_dirs = store.iter_run_dirs(trained_store)
    room = bundle.export_size(run_dirs[:2])  # a size limit that two of the runs fill
    limit = f"import engines.bundle as b; b.MAX_TOTAL_BYTES = {room}"
    result = subprocess.run(
        [sys.executable, "-c", f"{limit}; from engines.__main__ import main; raise SystemExit("
         f"main(['--results-dir', {str(trained_store)!r}, 'export', '-o', "
         f"{str(tmp_path / 'team.zip')!r}]))"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert f"exported 2 run(s) to {tmp_path / 'team.zip'}" in result.stdout
    left_out = [line for line in result.stderr.splitlines() if "the bundle is full" in line]
    assert len(left_out) == len(run_dirs) - 2


def test_cancel_takes_a_full_run_id_that_is_also_the_end_of_another(results_dir: Path) -> None:
    queued = store.create_run(RunSpec("torch", "dnn"))
    short = results_dir / queued.name.split("-", 2)[2]  # "torch-dnn-<hex>", as an import may name
    shutil.copytree(queued, short)
    run = store.read_run(queued)
    store.write_json(short / store.RUN_JSON, {**run, "run_id": short.name})

    result = run_cli("cancel", short.name)

    assert result.returncode == 0, result.stderr
    assert store.read_run(short)["status"] == "cancelled"
    assert store.read_run(queued)["status"] == "queued"


def test_export_never_overwrites_a_file(results_dir: Path, tmp_path: Path) -> None:
    existing = tmp_path / "mine.zip"
    existing.write_bytes(b"my own file")
    result = run_cli("export", "-o", str(existing))
    assert result.returncode == 1 and "exists" in result.stderr
    assert existing.read_bytes() == b"my own file"


def test_export_to_a_folder_writes_a_dated_bundle_in_it(
    trained_store: Path, tmp_path: Path
) -> None:
    exported = run_cli("--results-dir", str(trained_store), "export", "-o", str(tmp_path))

    assert exported.returncode == 0, exported.stderr
    (written,) = tmp_path.glob("digitlab-runs-*.zip")
    assert re.fullmatch(r"digitlab-runs-\d{8}-\d{6}\.zip", written.name)
    assert f"to {written}" in exported.stdout


def test_import_of_a_damaged_bundle_is_one_line_and_changes_nothing(
    results_dir: Path, tmp_path: Path
) -> None:
    damaged = tmp_path / "team.zip"
    damaged.write_bytes(b"PK\x03\x04 not really a zip")
    result = run_cli("import", str(damaged))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {damaged}: damaged zip file") and "nothing imported" in line
    assert store.iter_run_dirs(results_dir) == []


def test_cancel_then_delete_a_job_by_the_short_id_the_dashboard_shows(results_dir: Path) -> None:
    queued = store.create_run(RunSpec("torch", "dnn"))  # no worker: it stays queued
    short_id = queued.name[-6:]

    refused = run_cli("delete", short_id, "--yes")
    cancelled = run_cli("cancel", short_id)
    unconfirmed = run_cli("delete", short_id)  # no terminal to ask, no --yes

    assert refused.returncode == 1 and "is queued; cancel it first" in refused.stderr
    assert cancelled.returncode == 0 and store.read_run(queued)["status"] == "cancelled"
    assert unconfirmed.returncode == 1 and "add --yes" in unconfirmed.stderr
    assert queued.is_dir()
    deleted = run_cli("delete", short_id, "--yes")
    assert deleted.returncode == 0 and not queued.exists()
    gone = run_cli("cancel", short_id)
    assert gone.returncode == 2 and f"no run in {results_dir} called '{short_id}'" in gone.stderr


def test_ctrl_d_at_the_delete_question_deletes_nothing(
    results_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engines.__main__ import main

    run_dir = store.create_run(RunSpec("torch", "dnn"))
    store.update_run(run_dir, status="cancelled")

    def end_of_input(prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("builtins.input", end_of_input)
    assert main(["delete", run_dir.name[-6:]]) == 1
    assert "nothing deleted" in capsys.readouterr().out
    assert run_dir.is_dir()


@pytest.mark.parametrize("command", [["runs"], ["export"], ["cancel", "5a7899"]])
def test_a_results_path_that_is_a_file_is_a_wrong_value_not_an_empty_store(
    tmp_path: Path, command: list[str]
) -> None:
    not_a_folder = tmp_path / "results"
    not_a_folder.write_text("a file where the store should be")
    result = run_cli("--results-dir", str(not_a_folder), *command)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {not_a_folder} is a file, not a run store folder"
    ]


def test_grid_queues_each_pair_once_and_skips_a_run_already_queued(results_dir: Path) -> None:
    """The same pair twice on the command line, or a job the store already has with the very
    same settings (it would train the same run again), is not queued."""
    quick = {"epochs": 1, "train_limit": 1000, "val_size": 300, "test_limit": 300}
    queued = store.create_run(RunSpec("torch", "dnn", **quick))  # no worker: it stays queued

    result = run_cli("grid", "--framework", "torch", "torch", "--arch", "dnn", "dnn", *QUICK)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"already queued or running: torch/dnn seed 42 ({queued.name})",
        "nothing new to queue",
    ]
    assert store.iter_run_dirs(results_dir) == [queued]


def test_runs_on_a_folder_that_does_not_exist_says_so(tmp_path: Path) -> None:
    result = run_cli("--results-dir", str(tmp_path / "typo"), "runs")
    assert result.returncode == 0
    assert result.stdout.strip() == f"no runs in {tmp_path / 'typo'} (no such folder)"


def test_a_worker_on_a_results_path_that_is_a_file_is_one_clear_line(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "results"
    not_a_folder.write_text("a file where the store should be")
    result = run_cli("--results-dir", str(not_a_folder), "worker")
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"error: cannot write runs to {not_a_folder}")
    assert "Traceback" not in result.stderr


def test_terminal_progress_prints_every_epochs_validation_metrics_above_a_short_bar(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """tqdm cuts its bar to the terminal width, so the metrics must not live in the bar."""
    from engines.core import EpochStats
    from engines.progress import EpochProgress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    spec = RunSpec(framework="torch", arch="dnn", epochs=2)
    with EpochProgress(spec) as progress:
        assert progress.bar is not None
        for epoch, val_accuracy in ((1, 0.9123), (2, 0.9456)):
            progress.update(EpochStats(epoch, 0.3, 0.9, 0.25, val_accuracy, 1e-3, 1.5))
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("epoch 1/2: ") and "val_acc 0.9123" in lines[0]
    assert lines[1].startswith("epoch 2/2: ") and "val_loss 0.2500 val_acc 0.9456" in lines[1]
    bar = err.replace("\r", "\n").splitlines()[-1]
    assert "2/2" in bar and "val_acc 0.9456" in bar and len(bar) < 100
