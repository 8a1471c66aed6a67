"""Grouping runs that differ only in their seed: each setting's mean and spread."""

from __future__ import annotations

import statistics
from pathlib import Path

import pandas as pd
import pytest

from engines import load_runs, store
from engines.compare import curves_summary, seed_curves, seed_groups
from engines.spec import RunSpec


def finished(spec: RunSpec, accuracy: float, seconds: float = 1.0) -> Path:
    run_dir = store.create_run(spec)
    store.update_run(
        run_dir, status="done", test_accuracy=accuracy, test_loss=0.1, seconds_per_epoch=seconds
    )
    return run_dir


def test_runs_differing_only_in_seed_form_one_group_with_their_mean_and_spread(
    results_dir: Path,
) -> None:
    accuracies = [0.981, 0.984, 0.986]
    for seed, accuracy in zip([1, 2, 3], accuracies, strict=True):
        finished(RunSpec("torch", "dnn", seed=seed, notes=f"try {seed}"), accuracy, seconds=seed)
    finished(RunSpec("torch", "dnn", seed=1, lr=0.01), 0.975)
    finished(RunSpec("keras", "dnn", seed=1), 0.990)
    store.create_run(RunSpec("torch", "dnn", seed=4))  # queued: no accuracy yet

    groups = seed_groups(load_runs(results_dir))

    assert list(zip(groups["framework"], groups["runs"], strict=True)) == [
        ("keras", 1),
        ("torch", 3),
        ("torch", 1),
    ]  # best mean first
    three = groups.iloc[1]
    assert three["seeds"] == "1, 2, 3"
    assert three["accuracy_mean"] == pytest.approx(statistics.mean(accuracies))
    assert three["accuracy_std"] == pytest.approx(statistics.stdev(accuracies))
    assert (three["accuracy_min"], three["accuracy_max"]) == (0.981, 0.986)
    assert three["seconds_per_epoch"] == 2.0
    assert len(three["run_ids"]) == 3
    assert groups.iloc[2]["spec_lr"] == 0.01
    assert groups.iloc[0]["accuracy_std"] != groups.iloc[0]["accuracy_std"]  # NaN: one run


def test_a_limit_equal_to_the_whole_split_is_the_same_setting_as_no_limit(
    results_dir: Path,
) -> None:
    finished(RunSpec("torch", "cnn", seed=1), 0.99)
    finished(RunSpec("torch", "cnn", seed=2, train_limit=55_000, test_limit=10_000), 0.98)
    finished(RunSpec("torch", "cnn", seed=3, train_limit=1_000), 0.90)

    groups = seed_groups(load_runs(results_dir))

    assert list(groups["runs"]) == [2, 1]
    assert list(groups["train_images"]) == [55_000, 1_000]


def test_a_store_without_finished_runs_has_no_groups(results_dir: Path) -> None:
    store.create_run(RunSpec("torch", "cnn"))
    groups = seed_groups(load_runs(results_dir))
    assert groups.empty and "accuracy_mean" in groups.columns


def test_seed_curves_average_each_epoch_over_the_runs_that_reached_it(results_dir: Path) -> None:
    val_accuracy = {1: [0.90, 0.94, 0.95], 2: [0.92, 0.96]}  # seed 2 stopped a epoch sooner
    for seed, accuracies in val_accuracy.items():
        run_dir = finished(RunSpec("torch", "dnn", seed=seed), accuracies[-1])
        rows = [
            {"epoch": epoch, "train_loss": 0.1, "train_accuracy": 0.9, "val_loss": 0.2,
             "val_accuracy": accuracy, "lr": 0.001, "epoch_seconds": 1.0}
            for epoch, accuracy in enumerate(accuracies, start=1)
        ]  # fmt: skip
        store.write_history(run_dir, store.read_run(run_dir), rows)
    runs = load_runs(results_dir)
    history = pd.concat([store.read_history(d) for d in runs["run_dir"]], ignore_index=True)

    curves = seed_curves(history, seed_groups(runs))

    assert curves["epoch"].tolist() == [1, 2, 3] and set(curves["group"]) == {0}
    assert curves["val_accuracy"].tolist() == pytest.approx([0.91, 0.95, 0.95])
    assert curves["val_accuracy_min"].tolist() == pytest.approx([0.90, 0.94, 0.95])
    assert curves["val_accuracy_max"].tolist() == pytest.approx([0.92, 0.96, 0.95])
    assert curves["runs"].tolist() == [2, 2, 1]
    assert set(curves["framework"]) == {"torch"} and set(curves["arch"]) == {"dnn"}


def test_a_diverged_run_leaves_its_groups_mean_and_range_blank_not_flattering(
    results_dir: Path,
) -> None:
    for seed, val_loss in [(1, 0.2), (2, float("nan"))]:
        run_dir = finished(RunSpec("torch", "dnn", seed=seed), 0.9)
        row = {"epoch": 1, "train_loss": 0.1, "train_accuracy": 0.9, "val_loss": val_loss,
               "val_accuracy": 0.9, "lr": 0.001, "epoch_seconds": 1.0}  # fmt: skip
        store.write_history(run_dir, store.read_run(run_dir), [row])
    runs = load_runs(results_dir)
    history = pd.concat([store.read_history(d) for d in runs["run_dir"]], ignore_index=True)

    (epoch,) = seed_curves(history, seed_groups(runs)).to_dict("records")

    assert epoch["runs"] == 2 and epoch["val_accuracy"] == pytest.approx(0.9)
    assert all(epoch[c] != epoch[c] for c in ("val_loss", "val_loss_min", "val_loss_max"))


def test_a_seed_trained_twice_is_counted_once_among_the_distinct_seeds(results_dir: Path) -> None:
    for seed in (4, 5, 5):
        finished(RunSpec("torch", "dnn", seed=seed), 0.98)

    (group,) = seed_groups(load_runs(results_dir)).to_dict("records")

    assert (group["runs"], group["distinct_seeds"], group["seeds"]) == (3, 2, "4, 5, 5")


def test_setting_values_read_as_people_write_them() -> None:
    from engines.compare import setting_name, setting_value

    assert [setting_value(v) for v in (55000.0, 20, 0.003, 0.5, None, float("nan"), "cosine")] == [
        "55,000", "20", "0.003", "0.5", "–", "–", "cosine",
    ]  # fmt: skip
    assert setting_name("spec_train_limit") == "training images"
    assert setting_name("spec_test_limit") == "test images"
    assert setting_name("spec_lr") == "learning rate"


def test_settings_only_another_scheduler_reads_do_not_split_a_group(results_dir: Path) -> None:
    for seed, factor in [(1, 0.5), (2, 0.25)]:  # cosine runs: the plateau factor is unused
        finished(RunSpec("keras", "dnn", seed=seed, scheduler="cosine", plateau_factor=factor), 0.9)
    for factor in (0.5, 0.25):  # plateau runs: it is their setting
        finished(RunSpec("keras", "dnn", scheduler="plateau", plateau_factor=factor), 0.9)

    groups = seed_groups(load_runs(results_dir))

    runs_by_setting = sorted(zip(groups["spec_scheduler"], groups["runs"], strict=True))
    assert runs_by_setting == [("cosine", 2), ("plateau", 1), ("plateau", 1)]


def test_curves_summary_gives_each_curves_last_and_best_validation_numbers() -> None:
    rows = [
        ("torch/dnn aaaaaa", 1, 0.90, 0.30), ("torch/dnn aaaaaa", 2, 0.95, 0.20),
        ("torch/dnn aaaaaa", 3, 0.94, 0.25), ("keras/cnn bbbbbb", 1, 0.50, float("nan")),
    ]  # fmt: skip
    history = pd.DataFrame(rows, columns=["label", "epoch", "val_accuracy", "val_loss"])

    table = curves_summary(history.iloc[::-1]).set_index("run")  # any row order

    assert table.loc["torch/dnn aaaaaa"].to_dict() == {
        "epochs": 3, "last_val_accuracy": 0.94, "best_val_accuracy": 0.95,
        "best_accuracy_epoch": 2, "last_val_loss": 0.25, "lowest_val_loss": 0.20,
        "lowest_loss_epoch": 2,
    }  # fmt: skip
    diverged = table.loc["keras/cnn bbbbbb"]  # a loss that was not a number: no lowest one
    assert diverged[["last_val_loss", "lowest_val_loss", "lowest_loss_epoch"]].isna().all()
    assert diverged["best_accuracy_epoch"] == 1
