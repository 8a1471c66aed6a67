"""Digit Lab home: the leaderboard of every run, filters, and the runs picked for comparison."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd
import streamlit as st

from dashboard import sidebar, ui
from engines.compare import seed_table, setting_name, settings_that_differ
from engines.spec import ARCHS, FRAMEWORKS
from engines.store import LEADERBOARD_COLUMNS, STATUSES

st.set_page_config(page_title="Digit Lab", page_icon="🔢", layout="wide")
sidebar.show()

st.title("Digit Lab")
st.write(
    "Handwritten-digit classifiers in Keras, PyTorch and Lightning, trained on the same MNIST "
    "split and compared side by side."
)

COLUMNS = {
    "run": st.column_config.TextColumn(
        "run", help="framework/arch and the end of the run id, as in the pickers and legends"
    ),
    "framework": st.column_config.TextColumn("framework"),
    "arch": st.column_config.TextColumn("arch"),
    "status": st.column_config.TextColumn("status"),
    "test_accuracy": ui.ACCURACY_COLUMN,
    "test_loss": st.column_config.NumberColumn("test loss", format="%.4f"),
    "best_epoch": st.column_config.NumberColumn("best epoch"),
    "stopped_epoch": st.column_config.NumberColumn("stopped at"),
    "wall_seconds": st.column_config.NumberColumn("wall time", format="%.1f s"),
    "seconds_per_epoch": st.column_config.NumberColumn(
        "median epoch",
        format="%.2f s",
        help="Median seconds per epoch (the wall time also covers loading, testing, saving "
        "and any slow epochs of a busy machine).",
    ),
    "trainable_params": st.column_config.NumberColumn("parameters", format="localized"),
    "seed": st.column_config.NumberColumn("seed"),
    "created_at": st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm"),
    "host": st.column_config.TextColumn(
        "machine",
        help="The machine that trained the run: its times compare with runs of the "
        "same machine only.",
    ),
}

SEED_COLUMNS = {
    "framework": COLUMNS["framework"],
    "arch": COLUMNS["arch"],
    "runs": st.column_config.NumberColumn("runs", help="finished runs with this setting"),
    "seeds": st.column_config.TextColumn("seeds"),
    "accuracy_mean": st.column_config.NumberColumn("mean test accuracy", format="%.2f %%"),
    "accuracy_std": st.column_config.NumberColumn(
        "± std",
        format="%.2f",
        help="Standard deviation over the seeds, in points (blank for a single run). A gap "
        "between two settings smaller than this is within seed-to-seed noise.",
    ),
    "accuracy_min": st.column_config.NumberColumn("worst", format="%.2f %%"),
    "accuracy_max": st.column_config.NumberColumn("best", format="%.2f %%"),
    "seconds_per_epoch": st.column_config.NumberColumn(
        "median epoch", format="%.2f s", help="Median of the runs' median seconds per epoch."
    ),
}


def show_empty_store() -> None:
    st.info(
        "No runs yet. Pick frameworks and architectures in the sidebar and press "
        "**Start training**, or train from a terminal:"
    )
    st.code(ui.cli_example(), language="bash")
    quick = (
        f"{sidebar.QUICK_START['epochs']} epochs on {sidebar.QUICK_START['train_limit']:,} images"
    )
    if st.button(f"Quick start: train all six pairs briefly ({quick})", type="primary"):
        specs = sidebar.build_specs(FRAMEWORKS, ARCHS, sidebar.QUICK_START)
        sidebar.queue_jobs(specs, "quick_start", inputs="")
    ui.show_remembered("quick_start", inputs="")


def filtered(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs matching the framework / arch / status filters (empty filter = all)."""
    filters = {"framework": FRAMEWORKS, "arch": ARCHS, "status": STATUSES}
    ui.warn_unknown_link_values({f"filter_{name}": choices for name, choices in filters.items()})
    for column, (name, choices) in zip(st.columns(3), filters.items(), strict=True):
        chosen = column.multiselect(
            name.capitalize(),
            choices,
            key=f"filter_{name}",
            placeholder="all",
            bind="query-params",
        )
        if chosen:
            runs = runs[runs[name].isin(chosen)]
    return runs


def leaderboard(runs: pd.DataFrame) -> pd.DataFrame:
    """Best test accuracy first (in percent); unfinished runs at the bottom. After the
    architecture come the settings that differ between runs of one architecture; the machine
    that trained each run when they are several, then the runs' notes, when any has some."""
    settings = settings_that_differ(runs)
    first, rest = LEADERBOARD_COLUMNS[:3], LEADERBOARD_COLUMNS[3:]
    notes = runs[["spec_notes"]] if runs["spec_notes"].astype(bool).any() else None
    # Runs trained on several machines (a teammate's, imported): whose is whose, and which
    # times compare (seconds depend on the machine).
    hosts = runs[["host"]] if runs["host"].dropna().nunique() > 1 else None
    table = pd.concat([runs[first], settings, runs[rest], hosts, notes], axis=1)
    table = table.sort_values("test_accuracy", ascending=False, na_position="last", kind="stable")
    table = table.assign(created_at=pd.to_datetime(table["created_at"], utc=True))
    table.insert(0, "run", list(ui.labels_by_id(table).values()))  # the full id stays hidden
    return ui.accuracy_in_percent(table)


def seed_groups_in_percent(runs: pd.DataFrame) -> pd.DataFrame:
    """The finished runs grouped by everything but the seed, accuracies in percent."""
    table = seed_table(runs)
    percent = ["accuracy_mean", "accuracy_std", "accuracy_min", "accuracy_max"]
    return table.assign(**{column: table[column] * 100 for column in percent})


def show_leaderboard(shown: pd.DataFrame) -> None:
    table = leaderboard(shown)
    settings = {c: setting_name(c) for c in table.columns if c.startswith("spec_")}
    st.dataframe(
        table,
        hide_index=True,
        column_order=[column for column in table.columns if column != "run_id"],
        column_config=COLUMNS | settings,
        key="leaderboard",
        placeholder=ui.MISSING,
    )


def show_seed_groups(shown: pd.DataFrame) -> None:
    table = seed_groups_in_percent(shown)
    if table.empty:
        st.info("No finished runs to group here (the filters above may hide some).")
        return
    settings = {c: setting_name(c) for c in table.columns if c.startswith("spec_")}
    st.dataframe(
        table,
        hide_index=True,
        column_order=[c for c in table.columns if c not in ("distinct_seeds", "run_ids")],
        column_config=SEED_COLUMNS | settings,
        key="seed_groups",
        placeholder=ui.MISSING,
    )


runs = ui.cached_runs()
ui.show_skipped(runs)
ui.show_incomplete(runs)
if runs.empty:
    ui.warn_missing_picks(runs)  # a shared link opened on an empty store
    show_empty_store()
    st.stop()

st.subheader("Leaderboard")
shown = filtered(runs)
ui.warn_unknown_link_values({"by_seed": ui.ON_OFF})
by_setting = st.toggle(
    "Group runs that differ only in seed",
    key="by_seed",
    bind="query-params",
    help="One row per setting with the mean, spread and range of its test accuracy over "
    "its seeds (finished runs only).",
)
if by_setting:
    show_seed_groups(shown)
else:
    show_leaderboard(shown)
st.caption(f"{len(shown)} of {len(runs)} runs · store: `{ui.results_root()}`")

st.subheader("Compare")
ui.warn_missing_picks(runs)  # a shared link naming runs this store does not have
ui.run_picker(runs)
st.page_link("pages/1_Curves.py", label="Curves and LR schedules", icon="📈")
st.page_link("pages/2_Confusion.py", label="Confusion matrices and mistakes", icon="🔍")
