"""Runs that differ only in their seed, summarised together.

One run's test accuracy moves by a tenth of a point or more from seed to seed, so a gap
between two settings means something only when it is larger than that spread. Grouping the
finished runs by everything but the seed gives each setting's mean, spread and run count
(what W&B calls grouping runs), for the dashboard and for notebooks alike.

:func:`curves_summary` puts training curves (one run's or one group's) in numbers: each
one's last and best validation accuracy and loss.
"""

from __future__ import annotations

import pandas as pd

from engines.spec import FIELD_LABELS

# Not part of a setting: the seed is what varies inside a group, notes are free text, and
# the image limits are compared as the number of images used (train_images/test_images),
# so "no limit" and "--train-limit 55000" are one setting.
NOT_SETTINGS = ("spec_seed", "spec_notes", "spec_train_limit", "spec_test_limit")


# Settings that only their scheduler reads: a run with another scheduler did not use them.
SCHEDULER_SETTINGS = {
    "plateau": ("spec_plateau_factor", "spec_plateau_patience"),
    "step": ("spec_step_size", "spec_step_gamma"),
}


def without_unused_settings(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with each scheduler's own settings blanked (NA) where another scheduler ran,
    so that, say, two cosine runs differing only in ``plateau_factor`` are one setting."""
    runs = runs.copy()
    for scheduler, columns in SCHEDULER_SETTINGS.items():
        unused = runs["spec_scheduler"] != scheduler
        for column in columns:
            runs[column] = runs[column].astype(object).where(~unused, None)
    return runs


def setting_columns(runs: pd.DataFrame) -> list[str]:
    """The columns of a :func:`engines.load_runs` table that together make a run's setting."""
    spec = [c for c in runs.columns if c.startswith("spec_") and c not in NOT_SETTINGS]
    return [*spec, "train_images", "test_images"]


def setting_name(column: str) -> str:
    """``spec_train_limit`` -> "training images": a setting column in the words the launcher
    uses, lower-case like other column names (the limits hold image counts here)."""
    field = column.removeprefix("spec_")
    if field == "test_limit":
        return "test images"
    return FIELD_LABELS.get(field, field.replace("_", " ")).lower()


MISSING = "–"  # a value a run does not have (yet), in every table that shows runs


def setting_value(value: object) -> str:
    """A setting's value for a label or a text table: ``55,000`` not ``55000.0``, ``0.003``."""
    if value is None or pd.isna(value):
        return MISSING
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:g}" if isinstance(value, float) else str(value)


# Columns of their own in every table, so never among the settings that differ.
SHOWN_ELSEWHERE = ("framework", "arch", "seed", "notes")


def settings_that_differ(runs: pd.DataFrame) -> pd.DataFrame:
    """The spec columns (``spec_<field>``) whose values differ between runs (or seed groups)
    of the same architecture, as W&B shows the config that sets runs apart. The image limits
    read as the number of images the run used (``train_images``/``test_images``: 55,000 and
    10,000 with the default split and no limit); a scheduler's own settings are blank where
    another scheduler ran (:func:`without_unused_settings`).
    """
    spec = (
        without_unused_settings(runs)
        .filter(like="spec_")
        .assign(
            spec_train_limit=runs["train_images"].astype("Int64"),
            spec_test_limit=runs["test_images"].astype("Int64"),
        )
    )
    shown = [f"spec_{name}" for name in SHOWN_ELSEWHERE]
    varied = spec.drop(columns=shown, errors="ignore").groupby(runs["arch"])
    varied = varied.nunique(dropna=False).gt(1).any()
    return spec[list(varied[varied].index)]


# What a seed group's summary holds, in the order the tables show it.
SUMMARY = ["runs", "seeds", "accuracy_mean", "accuracy_std", "accuracy_min", "accuracy_max",
           "seconds_per_epoch"]  # fmt: skip


def seed_table(runs: pd.DataFrame) -> pd.DataFrame:
    """:func:`seed_groups` as the dashboard, the report and the CLI show it: ``framework``,
    ``arch``, the settings that differ between groups of one architecture
    (:func:`settings_that_differ`), then :data:`SUMMARY`, with ``distinct_seeds`` and
    ``run_ids`` last."""
    groups = seed_groups(runs)
    settings = settings_that_differ(groups)
    extra = ["distinct_seeds", "run_ids"]
    return pd.concat([groups[["framework", "arch"]], settings, groups[SUMMARY + extra]], axis=1)


def seed_groups(runs: pd.DataFrame) -> pd.DataFrame:
    """The done runs of ``runs`` (a :func:`engines.load_runs` table), one row per setting.

    Columns: ``framework``, ``arch``, the setting columns (``spec_*`` and the image counts),
    then ``runs``, ``distinct_seeds`` (fewer than ``runs`` when a seed was trained twice,
    whose spread is then partly run-to-run noise), ``seeds`` (sorted, as text), the test
    accuracy's ``accuracy_mean``, ``accuracy_std`` (sample standard deviation; NaN for a
    single run), ``accuracy_min`` and ``accuracy_max``, the median ``seconds_per_epoch`` over
    the runs' medians, and ``run_ids``. Best mean accuracy first.
    """
    done = without_unused_settings(runs[runs["status"] == "done"])
    keys = setting_columns(runs)
    columns = [*keys, "runs", "distinct_seeds", *SUMMARY[1:], "run_ids"]
    if done.empty:
        return pd.DataFrame(columns=["framework", "arch", *columns])
    groups = done.groupby(keys, dropna=False, sort=False)
    table = groups.agg(
        runs=("run_id", "size"),
        distinct_seeds=("seed", "nunique"),
        seeds=("seed", lambda seeds: ", ".join(str(s) for s in sorted(seeds))),
        accuracy_mean=("test_accuracy", "mean"),
        accuracy_std=("test_accuracy", "std"),
        accuracy_min=("test_accuracy", "min"),
        accuracy_max=("test_accuracy", "max"),
        seconds_per_epoch=("seconds_per_epoch", "median"),
        run_ids=("run_id", list),
    ).reset_index()
    table.insert(0, "framework", table["spec_framework"])
    table.insert(1, "arch", table["spec_arch"])
    return table.sort_values("accuracy_mean", ascending=False, kind="stable").reset_index(drop=True)


CURVES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "epoch_seconds")


def seed_curves(history: pd.DataFrame, groups: pd.DataFrame) -> pd.DataFrame:
    """The runs' histories (``store.read_history`` tables stacked) averaged per seed group.

    ``groups`` is a :func:`seed_groups` table. One row per group (``group``: its row number
    there) and epoch: each curve's mean over the group's runs that reached that epoch, its
    range as ``<curve>_min`` and ``<curve>_max`` (NaN where a run's value is NaN), and
    ``runs``, how many runs reached it (a run that stopped early drops out of the later epochs'
    means). Runs not in a group are left out.
    """
    group_of = {run_id: number for number, ids in enumerate(groups["run_ids"]) for run_id in ids}
    grouped = history[history["run_id"].isin(group_of)]
    grouped = grouped.assign(group=grouped["run_id"].map(group_of))
    by_epoch = grouped.groupby(["group", "epoch"])
    # A diverged run (NaN loss) makes its epochs' mean and range NaN too: skipping it would
    # draw the group as if that seed had trained well.
    stats = by_epoch[list(CURVES)].agg(["mean", "min", "max"], skipna=False)
    stats.columns = [
        curve if stat == "mean" else f"{curve}_{stat}" for curve, stat in stats.columns
    ]
    stats["runs"] = by_epoch.size()
    stats = stats.reset_index()
    return stats.assign(
        framework=groups["framework"].to_numpy()[stats["group"]],
        arch=groups["arch"].to_numpy()[stats["group"]],
    )


def seed_group_labels(table: pd.DataFrame) -> dict[int, str]:
    """A name per row of a :func:`seed_table`, like ``torch/dnn · 3 seeds``: with the
    settings that set it apart when its pair has several groups (``… · learning rate
    0.01``), and the run count when it repeats a seed (``2 runs, 1 seed``)."""
    settings = table.filter(like="spec_")
    pairs = table["framework"] + "/" + table["arch"]
    labels = {}
    for number, group in table.iterrows():
        seeds = group["distinct_seeds"]
        count = f"{seeds} seed" + ("s" if seeds > 1 else "")
        if group["runs"] > seeds:
            count = f"{group['runs']} runs, {count}"
        labels[number] = f"{pairs[number]} · {count}"
        same_pair = settings[pairs == pairs[number]]
        if len(same_pair) > 1:  # name only what tells this pair's groups apart
            apart = [c for c in same_pair if same_pair[c].nunique(dropna=False) > 1]
            differ = (f"{setting_name(c)} {setting_value(same_pair.at[number, c])}" for c in apart)
            labels[number] += " · " + ", ".join(differ)
    return labels


# --- curves in numbers -------------------------------------------------------------------
CURVES_SUMMARY = [
    "run", "epochs", "last_val_accuracy", "best_val_accuracy", "best_accuracy_epoch",
    "last_val_loss", "lowest_val_loss", "lowest_loss_epoch",
]  # fmt: skip


def curves_summary(history: pd.DataFrame) -> pd.DataFrame:
    """One row per curve (``label``) of stacked histories, in the order they come: ``run``
    (the label), ``epochs``, the last epoch's validation accuracy and loss, the best of each
    and the epoch it came in (missing where a run has no number, a diverged loss say).

    What the Curves page's charts show, readable without hovering over them.
    """
    rows = [
        _curve_numbers(str(label), curve.sort_values("epoch"))
        for label, curve in history.groupby("label", sort=False)
    ]
    table = pd.DataFrame(rows, columns=CURVES_SUMMARY)
    epochs = dict.fromkeys(("epochs", "best_accuracy_epoch", "lowest_loss_epoch"), "Int64")
    numbers = dict.fromkeys(CURVES_SUMMARY[2:], "float64")
    return table.astype(numbers | epochs)


def _curve_numbers(label: str, curve: pd.DataFrame) -> dict[str, object]:
    last = curve.iloc[-1]
    best_accuracy, best_accuracy_epoch = _best(curve, "val_accuracy", highest=True)
    lowest_loss, lowest_loss_epoch = _best(curve, "val_loss", highest=False)
    return {
        "run": label,
        "epochs": int(last["epoch"]),
        "last_val_accuracy": last["val_accuracy"],
        "best_val_accuracy": best_accuracy,
        "best_accuracy_epoch": best_accuracy_epoch,
        "last_val_loss": last["val_loss"],
        "lowest_val_loss": lowest_loss,
        "lowest_loss_epoch": lowest_loss_epoch,
    }


def _best(curve: pd.DataFrame, column: str, highest: bool) -> tuple[float | None, int | None]:
    """The best value of ``column`` and its (first) epoch, or None twice when it has none."""
    values = curve[column].dropna()
    if values.empty:
        return None, None
    at = values.idxmax() if highest else values.idxmin()
    return values[at], int(curve.at[at, "epoch"])
